"""A camera-like low-resolution sub-stream made from a recording.

IP cameras send a second, smaller H.264 stream for analytics. Replays, the demo and the benchmarks
need one beside their main-stream recordings: this makes it the way a camera would (same frames and
times, H.264, a keyframe every `gop_s` seconds, no B-frames).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av


def make_substream(src: str | Path, dst: str | Path, width: int = 384, height: int = 288, *,
                   gop_s: float = 2.0, crf: int = 26) -> Path:
    """Writes `dst` (MP4, H.264, `width`x`height`) from every frame of `src`; returns `dst`."""
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        enc = out.add_stream("libx264", rate=rate, options={
            "preset": "veryfast", "crf": str(crf), "g": str(max(1, round(gop_s * rate))), "bf": "0",
            "threads": "1"})
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.codec_context.time_base = Fraction(1) / rate
        for index, frame in enumerate(inp.decode(stream)):
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = index, enc.codec_context.time_base  # one frame per period, as sent
            out.mux(enc.encode(small))
        out.mux(enc.encode(None))
    return dst
