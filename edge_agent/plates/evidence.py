"""Parking evidence (违停取证): the plate on the event and the timed set of stills.

Field systems record, per violation, the plate and at least three stills while the vehicle stands
(GA/T 832 style): here `still_1.jpg` the wide view when the vehicle was first seen stopped in the
zone, `still_2.jpg` the wide view when the rule's dwell had passed (same vehicle, same place: the
two are more than the allowed stop time apart), `still_3.jpg` the close-up of the vehicle in the
frame its plate read best, and `plate.jpg` the plate itself, upright and upscaled. Each still
carries a burned-in line: time, camera, place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.plates.watch import PlateWatcher, TrackPlates
from edge_agent.types import Frame, ProblemUpdate
from protocol import plates
from protocol.fonts.text import draw_text, label_size_px
from protocol.messages import MediaKind, PlateInfo

CLOSE_UP_HEIGHT = 480  # pixels: the vehicle close-up is upscaled to at least this
# Draws a caption line onto a copy of an image (the stills' burned-in time, camera and place).
Captioner = Callable[[np.ndarray, str], np.ndarray]


def burn_in(image: np.ndarray, line: str) -> np.ndarray:
    """A copy of `image` with `line` stamped across its top on a dark band, as field systems stamp their
    stills (white on black reads on any scene, day or night)."""
    out = image.copy()
    size = label_size_px(out.shape)
    draw_text(out, line, (0, 0), size, color=(255, 255, 255), background=(0, 0, 0), padding=max(4, size // 4))
    return out


def plate_info(state: TrackPlates | None) -> PlateInfo:
    """The plate as the reads agreed; text None ("plate unreadable") without a legible read."""
    if state is None:
        return PlateInfo()
    v = state.verdict()
    if v.text is None:
        return PlateInfo(attempts=v.attempts)
    return PlateInfo(text=v.text, colour=v.colour, score=round(min(1.0, v.score), 4), frames=v.frames,
                     attempts=v.attempts)


def caption_line(ts: float, camera_id: str, place: str | None, timezone: str) -> str:
    """时间 2026-12-07 11:52:03  摄像机 plaza-east  地点 长江路东段 (camera-local time)."""
    local = datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")
    line = f"时间 {local}  摄像机 {camera_id}"
    return f"{line}  地点 {place}" if place else line


def close_up(image: np.ndarray, xyxy: tuple[float, float, float, float], margin: float = 0.1) -> np.ndarray:
    """The vehicle with a margin, upscaled so its plate is legible on a page."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = xyxy
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    crop = image[int(max(0, y1 - my)):int(min(h, y2 + my + 1)), int(max(0, x1 - mx)):int(min(w, x2 + mx + 1))]
    if crop.size == 0:
        crop = image
    scale = max(1.0, CLOSE_UP_HEIGHT / crop.shape[0])
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def timed_stills(state: TrackPlates | None, fired: Frame, xyxy: tuple[float, float, float, float],
                 caption: Callable[[np.ndarray, float], np.ndarray]) -> list[tuple[str, MediaKind, np.ndarray]]:
    """The stills of one parking event: (file name, kind, image), captioned by `caption(image, ts)`."""
    first = state.stopped_frame if state and state.stopped_frame is not None else fired
    near = state.best_frame if state and state.best_frame is not None else fired
    near_box = state.best_vehicle if state and state.best_vehicle is not None else xyxy
    out = [
        ("still_1.jpg", MediaKind.STILL, caption(first.image, first.ts)),
        ("still_2.jpg", MediaKind.STILL, caption(fired.image, fired.ts)),
        (plates.CLOSE_UP_STILL, MediaKind.STILL, caption(close_up(near.image, near_box), near.ts)),
    ]
    crop = state.plate_crop() if state else None
    if crop is not None:
        out.append(("plate.jpg", MediaKind.PLATE, crop))
    return out


class ParkingEvidence:
    """One camera's parking evidence for the evidence builder: which classes get it, the plate watcher
    that read their vehicles, and how the stills are captioned (None: no burned-in line)."""

    def __init__(self, classes: frozenset[str], watcher: PlateWatcher | None, *, camera_id: str,
                 place: str | None, timezone: str, captioner: Captioner | None = burn_in) -> None:
        self.classes = classes
        self.watcher = watcher
        self.camera_id, self.place, self.timezone = camera_id, place, timezone
        self.captioner = captioner

    def _state(self, update: ProblemUpdate) -> TrackPlates | None:
        return self.watcher.for_tracks(update.track_ids) if self.watcher else None

    def info(self, update: ProblemUpdate) -> PlateInfo:
        return plate_info(self._state(update))

    def stills(self, update: ProblemUpdate, fired: Frame) -> list[tuple[str, MediaKind, np.ndarray]]:
        return timed_stills(self._state(update), fired, update.xyxy, self._caption)

    def _caption(self, image: np.ndarray, ts: float) -> np.ndarray:
        if self.captioner is None:
            return image
        return self.captioner(image, caption_line(ts, self.camera_id, self.place, self.timezone))
