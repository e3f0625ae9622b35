"""The shipped CJK font: it covers every Chinese string the project shows, and draw_text puts real glyphs
(not .notdef boxes) on images without any system font."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from protocol.catalog import default_catalog
from protocol.fonts import FONT_FAMILY, FONT_PATH, LICENSE_PATH
from protocol.fonts.text import draw_text, label_size_px, text_size
from protocol.label_names import CATALOG_ZH, COCO_ZH

REPO = Path(__file__).resolve().parents[2]
NOT_IN_FONT = "\U00020000"  # CJK extension B: outside any GB2312 subset, so it draws as .notdef


def font_chars() -> set[str]:
    return {chr(cp) for cp in TTFont(FONT_PATH)["cmap"].getBestCmap()}


def test_font_is_the_renamed_subset_with_its_licence() -> None:
    font = TTFont(FONT_PATH)
    assert font["name"].getDebugName(1) == FONT_FAMILY
    assert "SIL OPEN FONT LICENSE Version 1.1" in LICENSE_PATH.read_text(encoding="utf-8")
    assert FONT_PATH.stat().st_size < 1_500_000  # a subset, not the 20 MB collection
    assert len(font_chars()) > 3755  # GB2312 level 1 and more


def test_font_covers_every_chinese_string_of_the_catalogue_and_the_page() -> None:
    have = font_chars()
    texts = {f"catalog {c.id}": c.name_zh + c.name_en for c in default_catalog()}
    texts["protocol.label_names"] = "".join(COCO_ZH.values()) + "".join(CATALOG_ZH.values())
    for path in sorted((REPO / "hub" / "web").glob("*.[jh]*")):
        if path.suffix in (".js", ".html"):
            texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    missing = {where: sorted({ch for ch in re.findall(r"[^\x00-\x7f]", text) if ch not in have})
               for where, text in texts.items()}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"characters the shipped font lacks (rerun python -m protocol.fonts.subset): {missing}"


def glyph(ch: str, size: int = 40) -> np.ndarray:
    """One character rendered by Pillow straight from the font file (not through draw_text)."""
    image = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(image).text((size // 2, size // 4), ch, font=ImageFont.truetype(str(FONT_PATH), size), fill=255)
    return np.asarray(image)


def test_chinese_characters_render_as_distinct_glyphs_not_notdef_boxes() -> None:
    tofu = glyph(NOT_IN_FONT)
    assert tofu.any()  # the .notdef outline is drawn, so a missing character would look like this
    renders = {ch: glyph(ch) for ch in "机动车乱停放审核"}
    for ch, r in renders.items():
        assert r.any() and not np.array_equal(r, tofu), f"{ch} renders as the .notdef box"
    assert len({r.tobytes() for r in renders.values()}) == len(renders)  # tofu would make them all alike


def test_draw_text_puts_the_same_pixels_as_the_font_on_a_bgr_image() -> None:
    image = np.zeros((120, 400, 3), np.uint8)
    box = draw_text(image, "暴露垃圾", (10, 20), 40, color=(0, 0, 255))
    tw, th = text_size("暴露垃圾", 40)
    assert (box.x2 - box.x1, box.y2 - box.y1) == (tw, th)
    painted = image[box.y1:box.y2, box.x1:box.x2]
    assert painted[..., 2].any() and not painted[..., :2].any()  # red in BGR: the channel order is kept
    reference = Image.new("L", (tw, th), 0)
    ImageDraw.Draw(reference).text((0, 0), "暴露垃圾", font=ImageFont.truetype(str(FONT_PATH), 40), fill=255)
    assert np.abs(painted[..., 2].astype(int) - np.asarray(reference)).max() <= 1
    assert not image[:, box.x2:].any() and not image[box.y2:].any()  # nothing outside its box


def test_draw_text_keeps_the_label_inside_the_frame_and_fills_its_background() -> None:
    image = np.zeros((60, 200, 3), np.uint8)
    box = draw_text(image, "机动车乱停放 新发现", (180, 50), 20, background=(0, 0, 200), padding=3)
    assert box.x2 == 200 and box.y2 <= 60 and box.x1 < 180  # shifted left and up instead of cut off
    assert (image[box.y1, box.x1:box.x2] == (0, 0, 200)).all()  # the padding row is the background


def test_draw_text_names_what_is_wrong_with_the_image() -> None:
    with pytest.raises(ValueError, match=r"BGR uint8 image.*\(10, 10\)"):
        draw_text(np.zeros((10, 10), np.uint8), "字", (0, 0), 12)


def test_labels_are_legible_at_1080p() -> None:
    size = label_size_px((1080, 1920, 3))
    assert size >= 28
    assert text_size("机动车乱停放", size)[1] >= 36  # ascent + descent of the line at that size
