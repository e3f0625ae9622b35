"""The project's one CJK font, for every place that shows Chinese: evidence overlays, stamps, the web page.

`CityEyeSansSC-Regular.otf` is a subset of Noto Sans CJK SC Regular (SIL Open Font License 1.1, see
`OFL.txt` beside it), renamed as the licence asks of modified versions. Nothing relies on system fonts:
camera boxes and the hub's browsers often have no CJK font, and Chinese then renders as empty boxes.
It lives under `protocol/` because it is the one package both the edge agent and the hub import; like the
problem catalogue it holds data the two share (the catalogue's Chinese names must render alike on both).
Drawing on images: `protocol.fonts.text` (needs Pillow: the `edge` and `hub` extras).
"""

from __future__ import annotations

from pathlib import Path

FONT_FAMILY = "CityEye Sans SC"
FONT_PATH = Path(__file__).with_name("CityEyeSansSC-Regular.otf")
LICENSE_PATH = Path(__file__).with_name("OFL.txt")
FONT_CONTENT_TYPE = "font/otf"
