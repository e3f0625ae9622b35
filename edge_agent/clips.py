"""Evidence clips: frames -> a short video every browser and evidence viewer plays.

Encoded with PyAV's FFmpeg (the wheel carries libx264 and libvpx): H.264 in MP4 first (every
browser, phone and desktop player), VP8 in WebM where the build lacks an H.264 encoder, MJPEG in
AVI as the last resort. FFmpeg's log stays off, so encoding a clip prints nothing.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np


@dataclass(frozen=True)
class ClipFormat:
    name: str  # the media file name events carry
    content_type: str
    codec: str  # FFmpeg encoder
    container: str  # FFmpeg muxer


CLIP_FORMATS = (
    ClipFormat("clip.mp4", "video/mp4", "libx264", "mp4"),
    ClipFormat("clip.webm", "video/webm", "libvpx", "webm"),
    ClipFormat("clip.avi", "video/x-msvideo", "mjpeg", "avi"),
)


@functools.cache
def clip_format() -> ClipFormat:
    """The first format whose encoder this FFmpeg build has."""
    for fmt in CLIP_FORMATS:
        try:
            av.codec.Codec(fmt.codec, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        return fmt
    raise RuntimeError(f"this FFmpeg build has none of the clip encoders {[f.codec for f in CLIP_FORMATS]}")


def _options(fmt: ClipFormat, quality: int) -> dict[str, str]:
    """Encoder settings for a JPEG-like `quality` (30-100): small files, fast, no threads of its own
    (clips are encoded off the hot path, one at a time, and must not crowd the decoders)."""
    if fmt.codec == "libx264":
        crf = round(51 - quality * 0.35)  # 80 -> 23, x264's default
        # veryfast with the cheapest motion search: a quarter less CPU per clip for 3% more bytes (clips
        # run at the detect rate, so successive frames differ a lot and a finer search finds little)
        return {"preset": "veryfast", "crf": str(crf), "profile": "main", "threads": "1",
                "x264-params": "subme=1:me=dia"}
    if fmt.codec == "libvpx":
        return {"crf": str(round(63 - quality * 0.5)), "b": "2M", "deadline": "realtime", "cpu-used": "8",
                "threads": "1"}
    return {"q:v": str(max(2, round(31 - quality * 0.29)))}


def encode_clip(frames: Sequence[np.ndarray], fps: float, quality: int = 80,
                fmt: ClipFormat | None = None) -> tuple[ClipFormat, bytes]:
    """BGR frames (resized to the first one's size) -> (format, file bytes); (format, b"") for no frames."""
    fmt = fmt or clip_format()
    if not frames:
        return fmt, b""
    h, w = frames[0].shape[:2]
    w, h = w - w % 2, h - h % 2  # 4:2:0 wants even sizes
    fd, path = tempfile.mkstemp(suffix=f".{fmt.container}")  # MP4's faststart pass rewrites the file
    os.close(fd)
    try:
        _write(path, frames, fps, quality, fmt, (w, h))
        with open(path, "rb") as f:
            return fmt, f.read()
    finally:
        os.unlink(path)


def _write(path: str, frames: Sequence[np.ndarray], fps: float, quality: int, fmt: ClipFormat,
           size_wh: tuple[int, int]) -> None:
    w, h = size_wh
    options = {"movflags": "+faststart"} if fmt.container == "mp4" else {}  # playable while downloading
    with av.open(path, "w", format=fmt.container, options=options) as container:
        stream = container.add_stream(fmt.codec, rate=Fraction(max(fps, 0.5)).limit_denominator(1000),
                                      options=_options(fmt, quality))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if fmt.codec == "mjpeg" else "yuv420p"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[..., :3]), format="bgr24")
            frame = frame.reformat(width=w, height=h, format=stream.pix_fmt)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
