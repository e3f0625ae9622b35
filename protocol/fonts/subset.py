"""Rebuild the shipped CJK font: a subset of Noto Sans CJK SC Regular, renamed "CityEye Sans SC".

    python -m protocol.fonts.subset --source /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

The source comes from Debian's `fonts-noto-cjk` (`apt-get download fonts-noto-cjk && dpkg -x ...`; the
SC face is number 2 of the collection). The subset keeps ASCII, Latin-1, general and CJK punctuation,
full-width forms, the GB2312 level-1 hanzi (the 3,755 most common characters: place names, stamps),
every character of the problem catalogue and of the repository's text files named in `EXTRA_TEXT_FILES`
(the page's message catalogue among them), and the plate province abbreviations. Needs fontTools (dev).
A test checks that the committed font still covers the catalogues, so a new string with a rare
character fails there and names the character; rerun this then.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

from protocol.fonts import FONT_FAMILY, FONT_PATH

REPO = Path(__file__).resolve().parents[2]
# Text whose every character must render: the problem catalogue and the reviewer page.
EXTRA_TEXT_FILES = ("protocol/catalog.yaml", "protocol/label_names.py", "hub/web/i18n.js", "hub/web/index.html",
                    "hub/web/app.js")
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领学警港澳挂临试超"
SC_FACE = 2  # NotoSansCJK-Regular.ttc: JP, KR, SC, TC, HK, then the Mono faces


def gb2312_rows(first: int, last: int) -> str:
    """Characters of GB2312 rows `first`..`last` (row 16-55: level-1 hanzi; 1-9: symbols, full-width)."""
    chars = []
    for row in range(first, last + 1):
        for cell in range(1, 95):
            try:
                chars.append(bytes([0xA0 + row, 0xA0 + cell]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(chars)


def wanted_text() -> str:
    text = [chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0xA0, 0x100)]
    text += [chr(c) for c in range(0x2010, 0x2070)]  # general punctuation: dashes, quotes, ellipsis, ‰
    text += [chr(c) for c in range(0x3000, 0x3040)]  # CJK symbols and punctuation
    text += [chr(c) for c in range(0xFF01, 0xFF5F)]  # full-width forms
    text += ["·", "×", "÷", "°", "←", "→", "↑", "↓", "↵", "●", "◉", "○", "■", "□", "▲", "△", "▼", "✓", "✗", "⌫"]
    text.append(gb2312_rows(1, 9))
    text.append(gb2312_rows(16, 55))
    text.append(PLATE_PROVINCES)
    for name in EXTRA_TEXT_FILES:
        path = REPO / name
        if path.exists():
            text.append(path.read_text(encoding="utf-8"))
    return "".join(sorted({ch for ch in "".join(text) if ch.isprintable() or ch == " "}))


def load_source(path: Path) -> TTFont:
    if path.suffix.lower() == ".ttc":
        return TTCollection(str(path)).fonts[SC_FACE]
    return TTFont(str(path))


def rename(font: TTFont) -> None:
    """A modified version gets its own family name (OFL: modified fonts should not pose as the original)."""
    names = {1: FONT_FAMILY, 2: "Regular", 3: f"{FONT_FAMILY} Regular; subset of Noto Sans CJK SC",
             4: f"{FONT_FAMILY} Regular", 6: FONT_FAMILY.replace(" ", "") + "-Regular", 16: FONT_FAMILY, 17: "Regular"}
    table = font["name"]
    for record in list(table.names):
        if record.nameID in names or record.nameID in (21, 22):
            table.removeNames(nameID=record.nameID)
    for name_id, value in names.items():
        table.setName(value, name_id, 3, 1, 0x409)
    if "CFF " in font:
        cff = font["CFF "].cff
        cff.fontNames = [names[6]]
        top = cff.topDictIndex[0]
        top.FullName, top.FamilyName = names[4], FONT_FAMILY


def build(source: Path, out: Path) -> int:
    font = load_source(source)
    options = subset.Options()
    # Kerning and composition only: the SC face maps to SC glyphs already, and locl/vert would pull in the
    # Japanese, Korean and vertical forms (twice the glyphs).
    options.layout_features = ["kern", "ccmp", "liga"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False  # CFF hints add size; FreeType and browsers autohint at these sizes
    options.desubroutinize = False
    subsetter = subset.Subsetter(options)
    text = wanted_text()
    subsetter.populate(text=text)
    subsetter.subset(font)
    rename(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(out))
    return len(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True,
                        help="NotoSansCJK-Regular.ttc (Debian fonts-noto-cjk) or a NotoSansCJKsc-Regular.otf")
    parser.add_argument("--out", type=Path, default=FONT_PATH, help="where to write the subset (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"--source {args.source}: no such file")
    count = build(args.source, args.out)
    print(f"{args.out}: {count} characters, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
