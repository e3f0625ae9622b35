"""Chinese (and any other) text drawn onto images with the shipped font; OpenCV's putText has no CJK.

Images are numpy arrays in OpenCV's BGR order and are drawn on in place; only the label's own region goes
through Pillow, so a label on a 1080p frame costs a small copy, not a frame conversion.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from protocol.fonts import FONT_PATH

BGR = tuple[int, int, int]


class TextBox(NamedTuple):
    """Where a label was drawn, in pixels: left, top, right, bottom (right/bottom exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int


@lru_cache(maxsize=32)
def font(size_px: int) -> ImageFont.FreeTypeFont:
    """The shipped font at `size_px` (the em size in pixels), for callers that draw with Pillow themselves."""
    if size_px < 1:
        raise ValueError(f"font size must be at least 1 px, got {size_px}")
    if not FONT_PATH.is_file():
        raise FileNotFoundError(f"the shipped CJK font is missing: {FONT_PATH} (reinstall cityeye)")
    return ImageFont.truetype(str(FONT_PATH), size_px, layout_engine=ImageFont.Layout.BASIC)


def label_size_px(image_shape: tuple[int, ...]) -> int:
    """A label size that reads at a glance: 1/36 of the shorter side (30 px at 1080p), at least 14 px."""
    return max(14, round(min(image_shape[:2]) / 36))


def text_size(text: str, size_px: int) -> tuple[int, int]:
    """(width, height) in pixels of `text` drawn at `size_px`, from the font's ascent to its descent."""
    f = font(size_px)
    ascent, descent = f.getmetrics()
    return round(f.getlength(text)), ascent + descent


def draw_text(image: np.ndarray, text: str, origin: tuple[int, int], size_px: int, color: BGR = (255, 255, 255),
              background: BGR | None = None, padding: int = 0) -> TextBox:
    """Draw `text` with its top-left corner at `origin` (x, y), on a filled `background` box when given.

    The box (text plus `padding` on each side) is shifted to stay inside the image where it fits, and
    clipped where it does not. Returns the box as drawn.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_text needs a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    tw, th = text_size(text, size_px)
    bw, bh = tw + 2 * padding, th + 2 * padding
    x1 = max(0, min(int(origin[0]), w - bw))
    y1 = max(0, min(int(origin[1]), h - bh))
    x2, y2 = min(w, x1 + bw), min(h, y1 + bh)
    if x2 <= x1 or y2 <= y1:
        return TextBox(x1, y1, x1, y1)
    region = image[y1:y2, x1:x2]
    if background is not None:
        region[:] = background
    pil = Image.fromarray(np.ascontiguousarray(region[..., ::-1]))
    ImageDraw.Draw(pil).text((padding, padding), text, font=font(size_px), fill=tuple(reversed(color)))
    region[:] = np.asarray(pil)[..., ::-1]
    return TextBox(x1, y1, x2, y2)
