"""`cityeye models quantize`: an int8 copy of a detector, calibrated on the box's own camera frames and
checked against the float model before it is cached."""

from __future__ import annotations

import argparse
import re
import sys

DESCRIPTION = """\
Write an int8 copy of a cached detector (static quantisation: int8 Conv weights and activations) to the
cache as NAME (default MODEL-int8), for cameras to run with `model: NAME`. Its activation ranges are
measured on frames of your own cameras: give the videos, streams or images they see (--frames, repeatable)
and their sub-stream size (--detect-size), so it is calibrated on what the detector will see.

The sampled frames are split in two, interleaved: one half calibrates, the other is held out to check the
int8 model against the float one at the model's operating thresholds. Per class (car, truck and bus as one,
as the edge tracks them) it prints how many objects each found and how many match (IoU >= 0.5), and the CPU
time per frame of each, single-threaded. The stem and the detection heads stay float. When a
class with at least 20 float detections agrees less than --min-agreement, nothing is cached and the exit
status is 2 (--force caches it anyway).

When to use it: a box whose cameras the detector cannot keep up with. A CPU with int8 dot-product
instructions (x86 AVX512-VNNI or AVX-VNNI, ARM dot-product) runs the int8 copy about twice as fast; one
without gains less: the printed ratio tells what this box gains. Quantise again when a camera's scene
changes a lot (new cameras, night-only sites)."""


# models.quantize's defaults (and why they are what they are); repeated here so that `cityeye --help` does
# not import numpy and onnx (tests/models/test_quantize.py checks they agree)
DEFAULT_FRAMES = 128
DEFAULT_METHOD = "minmax"
DEFAULT_MIN_AGREEMENT = 0.8
METHODS = ("minmax", "percentile", "entropy")


def register(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("quantize", help="an int8 copy of a detector, calibrated on your cameras' frames",
                        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a cached model name (or an .onnx file with its manifest)")
    p.add_argument("--frames", action="append", required=True, metavar="SRC",
                   help="a video file, stream URL (rtsp://...), image or folder of images; repeat for several")
    p.add_argument("--name", help="name in the cache (default MODEL-int8)")
    p.add_argument("--count", type=int, default=DEFAULT_FRAMES,
                   help=f"frames to sample in all, half to calibrate and half to check (default {DEFAULT_FRAMES})")
    p.add_argument("--detect-size", metavar="WxH",
                   help="resize frames to the camera's sub-stream size first, e.g. 384x288")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"how activation ranges are taken from the frames (default {DEFAULT_METHOD}; entropy "
                   "currently gives minmax's ranges in onnxruntime)")
    p.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT,
                   help="lowest share of a class's objects both models must find alike (matched / larger count) "
                   f"to cache the copy (default {DEFAULT_MIN_AGREEMENT}; above 1 only checks: a copy is never "
                   "cached when a class has enough detections to judge)")
    p.add_argument("--force", action="store_true", help="cache the int8 copy even when it fails the check")
    p.set_defaults(func=_quantize)


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--detect-size {text!r}: expected WIDTHxHEIGHT, e.g. 384x288")
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise ValueError(f"--detect-size {text!r}: width and height must be 16 to 4096 pixels")
    return width, height


def _quantize(args: argparse.Namespace) -> int:
    from models.cache import ModelNotFoundError, resolve
    from models.frame_sources import FrameSourceError, read_frames
    from models.manifest import ManifestError
    from models.parity import format_parity
    from models.quantize import QuantizeError, Refused, quantize

    def say(line: str) -> None:
        print(line, flush=True)

    def warn(line: str) -> None:
        print(f"warning: {line}", file=sys.stderr, flush=True)

    try:
        if args.count < 4:
            raise ValueError(f"--count {args.count}: need at least 4 frames (half calibrate, half check)")
        if args.min_agreement < 0:
            raise ValueError(f"--min-agreement {args.min_agreement}: must be 0 or more")
        size = _size(args.detect_size) if args.detect_size else None
        source = resolve(args.model)
        say(f"sampling {args.count} frames from {', '.join(args.frames)}"
            + (f" at {size[0]}x{size[1]}" if size else ""))
        frames = read_frames(args.frames, args.count, size=size, warn=warn)
        result = quantize(source, frames, name=args.name, method=args.method, min_agreement=args.min_agreement,
                          force=args.force, on_progress=say)
    except Refused as exc:
        for line in format_parity(exc.report, args.min_agreement):
            print(line)
        print(f"error: not cached: the int8 copy agrees with {args.model} less than --min-agreement "
              f"{args.min_agreement} on {', '.join(exc.failing)}; calibrate on more or other frames, or "
              "--force to cache it anyway", file=sys.stderr)
        return 2
    except (ModelNotFoundError, ManifestError, FrameSourceError, QuantizeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in format_parity(result.report, args.min_agreement):
        print(line)
    model = result.model
    if result.forced:
        warn(f"cached despite the check (--force): {model.manifest.name} disagrees with {args.model}")
    print(f"{model.manifest.name}: {model.onnx_path} (sha256 {model.manifest.sha256}, calibrated on "
          f"{result.calibration_frames} frames, {args.method}); use it with `model: {model.manifest.name}`")
    return 0
