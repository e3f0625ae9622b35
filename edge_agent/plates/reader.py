"""Reading the plate on a vehicle: localise text lines, read each restricted to plate characters,
keep only reads that are well-formed Chinese plates.

The text detector's box around a plate is loose (it grows regions so whole characters fit) and a
plate seen from the side is a parallelogram, not a rectangle; both upset the recogniser. So each
first box is detected again in a window around it where the plate fills the detector's input, and the
line is read in a few variants (trimmed top and bottom, sheared upright) from the cheapest
on, and the well-formed text most variants agree on wins; two sure reads of the same text end it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.plates.colour import pixel_colour, plate_colour
from edge_agent.plates.ocr import Decoded, PlateOcr, TextBox, TextDetector, ctc_decode, rectify
from protocol.plates import ALPHABET, SEPARATOR, PlateColour, formatted, is_new_energy, is_valid

# Line variants: (fraction trimmed off top and bottom, horizontal shear per unit height).
VARIANTS: tuple[tuple[float, float], ...] = (
    (0.15, 0.0), (0.15, 0.2), (0.15, -0.2), (0.2, 0.0), (0.1, 0.3), (0.1, -0.3), (0.0, 0.0), (0.25, 0.0))
WIDEN = 0.1  # the detector's box often clips the last character: each side is stretched by this
MIN_CHAR_SCORE = 0.3  # below this for any character the read is a guess
CONFIDENT = 0.85  # least character probability of a sure read
AGREE = 2  # sure reads of one text that end the search over variants
MIN_LINE_HEIGHT = 8  # pixels; smaller text cannot hold a legible plate
MIN_ASPECT, MAX_ASPECT = 1.5, 9.0  # single-row plates are about 3.1-4.5 wide for 1 high; loose for tilt
COARSE_ASPECT = (1.2, 9.0)  # a first box may hold only part of the plate
MIN_PLATE_CHARS = 4  # plate characters a first box must show to be read in earnest
REFINE_SIDE = 320  # the window around a first box is detected again at this size
REFINE_MARGIN = 0.6  # of the first box's width and height, each side


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One well-formed plate read on one image."""

    text: str  # formatted: 皖A·73C39
    colour: PlateColour
    score: float  # mean character probability
    min_char: float  # the least sure character
    xyxy: tuple[float, float, float, float]  # pixels of the image read
    corners: np.ndarray  # (4, 2) the plate quadrilateral, pixels of the image read


def _variant(line: np.ndarray, trim: float, shear: float) -> np.ndarray:
    h, w = line.shape[:2]
    top = int(h * trim)
    cut = line[top:h - top] if h - 2 * top >= MIN_LINE_HEIGHT else line
    if shear == 0.0:
        return cut
    ch = cut.shape[0]
    matrix = np.float32([[1, shear, -shear * ch / 2], [0, 1, 0]])
    return cv2.warpAffine(cut, matrix, (w, ch), borderMode=cv2.BORDER_REPLICATE)


def _plausible(box: TextBox, aspect: tuple[float, float]) -> bool:
    tl, tr, _, bl = box.corners
    width, height = float(np.linalg.norm(tr - tl)), float(np.linalg.norm(bl - tl))
    return height >= MIN_LINE_HEIGHT and aspect[0] <= width / max(height, 1e-6) <= aspect[1]


class PlateReader:
    """Reads plates on vehicle crops (or any image showing a vehicle close up)."""

    def __init__(self, ocr: PlateOcr | None = None, *, threads: int | None = None) -> None:
        self.ocr = ocr or PlateOcr(threads=threads)
        rec = self.ocr.recogniser
        self._allowed = rec.columns(ALPHABET + SEPARATOR + ".")
        self._fine = TextDetector(self.ocr.det_path, threads=threads, side=REFINE_SIDE)

    def read(self, image: np.ndarray) -> list[PlateRead]:
        """Every well-formed plate on `image` (BGR), best first; [] when none is legible."""
        if image.ndim != 3 or image.shape[0] < MIN_LINE_HEIGHT or image.shape[1] < MIN_LINE_HEIGHT:
            return []
        reads = []
        for coarse in self.ocr.detector.detect(image):
            if not _plausible(coarse, COARSE_ASPECT) or not self._may_be_plate(image, coarse):
                continue
            box = self.refine(image, coarse)
            found = self.read_line(image, box) if _plausible(box, (MIN_ASPECT, MAX_ASPECT)) else None
            if found is not None:
                reads.append(found)
        return _distinct(sorted(reads, key=lambda r: -r.score))

    def _may_be_plate(self, image: np.ndarray, box: TextBox) -> bool:
        """One cheap read of the first box: a line with fewer than 4 plate characters (a shop sign, a
        banner, a badge) is not refined and read in every variant."""
        line = _variant(rectify(image, _widened(box.corners, WIDEN)), *VARIANTS[0])
        return len(self._decode(line).text) >= MIN_PLATE_CHARS

    def refine(self, image: np.ndarray, coarse: TextBox) -> TextBox:
        """The line detected again in a window around `coarse`, at a scale where the plate fills it:
        on a whole vehicle the plate is small and its box often misses the last characters."""
        x1, y1, x2, y2 = coarse.xyxy
        mx, my = (x2 - x1) * REFINE_MARGIN, (y2 - y1) * REFINE_MARGIN
        left, top = int(max(0, x1 - mx)), int(max(0, y1 - my))
        window = image[top:int(min(image.shape[0], y2 + my)), left:int(min(image.shape[1], x2 + mx))]
        if min(window.shape[:2]) < MIN_LINE_HEIGHT:
            return coarse
        centre = np.array([window.shape[1] / 2, window.shape[0] / 2])
        fine = [b for b in self._fine.detect(window) if cv2.pointPolygonTest(b.corners, tuple(centre), False) >= 0]
        if not fine:
            return coarse
        best = max(fine, key=lambda b: cv2.contourArea(b.corners))
        return TextBox(best.corners + np.array([left, top], np.float32), best.score)

    def read_line(self, image: np.ndarray, box: TextBox) -> PlateRead | None:
        """The well-formed text most variants of one line agree on (weighted by score), or None."""
        corners = _widened(box.corners, WIDEN)
        line = rectify(image, corners)
        # A green plate is a new-energy one with 6 characters after the letter: a 5-character read of
        # it has lost one (and is a different, valid plate), so only new-energy reads count.
        green = pixel_colour(line) == PlateColour.GREEN
        votes: dict[str, list[Decoded]] = {}
        for trim, shear in VARIANTS:
            decoded = self._decode(_variant(line, trim, shear))
            if not _acceptable(decoded, green):
                continue
            votes.setdefault(decoded.text, []).append(decoded)
            sure = [d for d in votes[decoded.text] if d.score >= CONFIDENT]
            if len(sure) >= AGREE:
                break
        if not votes:
            return None
        text = max(votes, key=lambda t: sum(_mean(d) for d in votes[t]))
        best = max(votes[text], key=_mean)
        return PlateRead(formatted(text), plate_colour(line, text), round(_mean(best), 4), round(best.score, 4),
                         _xyxy(corners), corners)

    def _decode(self, line: np.ndarray) -> Decoded:
        rec = self.ocr.recogniser
        raw = ctc_decode(rec.probabilities(line), rec.characters, self._allowed)
        keep = [i for i, ch in enumerate(raw.text) if ch not in SEPARATOR + "."]
        return Decoded("".join(raw.text[i] for i in keep), tuple(raw.char_scores[i] for i in keep))


def _widened(corners: np.ndarray, fraction: float) -> np.ndarray:
    """The quadrilateral stretched along its rows by `fraction` of its width on each side."""
    tl, tr, br, bl = corners
    top, bottom = (tr - tl) * fraction, (br - bl) * fraction
    return np.array([tl - top, tr + top, br + bottom, bl - bottom], np.float32)


def _xyxy(corners: np.ndarray) -> tuple[float, float, float, float]:
    return (float(corners[:, 0].min()), float(corners[:, 1].min()), float(corners[:, 0].max()),
            float(corners[:, 1].max()))


def _acceptable(decoded: Decoded, green: bool) -> bool:
    return (is_valid(decoded.text) and decoded.score >= MIN_CHAR_SCORE
            and (not green or is_new_energy(decoded.text)))


def _mean(decoded: Decoded) -> float:
    return sum(decoded.char_scores) / len(decoded.char_scores) if decoded.char_scores else 0.0


def _distinct(reads: Sequence[PlateRead]) -> list[PlateRead]:
    """One read per plate: the same text twice (overlapping boxes, two vehicles' crops) counts once."""
    seen: set[str] = set()
    out = []
    for r in reads:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out
