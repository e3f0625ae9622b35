"""CPU per call of the hub's structural JPEG check (hub.jpeg.jpeg_error): the previous implementation
against the current one, in one run, on a ~100 KB JPEG as bench/ingest.py sends (random noise blurred,
quality 88), passed as bytes and as a memoryview (what ingest passes: zmq frames).

    .venv/bin/python bench/jpeg_check.py [--calls 2000] [--rounds 7] [--old-rev d4b1ac2]

The previous implementation is read from git (`git show REV:hub/jpeg.py`): it copied a memoryview to
bytes, found the end of each scan with a lookahead regex and re-checked every table segment per file.
Variants run interleaved, round after round, timed with time.process_time; the machine may be noisy, so
compare the ratios (per round, then the median) rather than absolute figures across runs. Extra rows:
the current code with its segment caches cleared before every call (files whose tables differ every time,
e.g. optimised Huffman tables), a progressive file and one with a restart interval.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.evidence import jpeg as new  # noqa: E402

OLD_REV = "d4b1ac2"  # hub.jpeg before the zero-copy / numpy scan / segment cache rewrite


def base_jpeg(wh: tuple[int, int] = (512, 384), *params: int) -> bytes:
    """bench/ingest.py's base_jpeg (a 93 KB file at the default size), with optional extra encoder params."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8), (3, 3), 0)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88, *params])
    assert ok
    return buf.tobytes()


def old_module(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:hub/jpeg.py"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType("hub_jpeg_old")
    exec(compile(source, f"{rev}:hub/jpeg.py", "exec"), module.__dict__)  # our own history
    return module


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def cold(data: bytes | memoryview) -> str | None:
    for cached in (new._frame, new._dqt, new._dht, new._sos):
        cached.cache_clear()
    return new.jpeg_error(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--old-rev", default=OLD_REV, help="git revision of the previous hub/jpeg.py")
    args = parser.parse_args()

    old = old_module(args.old_rev)
    files = {
        "baseline": base_jpeg(),
        "progressive": base_jpeg((512, 384), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "restart interval 4": base_jpeg((512, 384), cv2.IMWRITE_JPEG_RST_INTERVAL, 4),
    }
    for name, data in files.items():
        assert old.jpeg_error(data) is None and new.jpeg_error(data) is None, name
        assert new.jpeg_error(memoryview(data)) is None, name
    base = files["baseline"]
    view = memoryview(base)
    # (label, old or None, new): each pair is timed in the same rounds.
    pairs: list[tuple[str, Callable[[], object] | None, Callable[[], object]]] = [
        ("bytes", lambda: old.jpeg_error(base), lambda: new.jpeg_error(base)),
        ("memoryview", lambda: old.jpeg_error(view), lambda: new.jpeg_error(view)),
        ("memoryview, caches cold", lambda: old.jpeg_error(view), lambda: cold(view)),
    ]
    for name in ("progressive", "restart interval 4"):
        mv = memoryview(files[name])
        pairs.append((f"{name}, memoryview", lambda mv=mv: old.jpeg_error(mv), lambda mv=mv: new.jpeg_error(mv)))

    print(f"{len(base) / 1024:.0f} KB JPEG ({len(base)} bytes), {args.calls} calls x {args.rounds} rounds; "
          f"old = {args.old_rev}:hub/jpeg.py")
    times: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _, _ in pairs}
    for _ in range(args.rounds):
        for label, old_fn, new_fn in pairs:
            times[label][0].append(per_call_us(old_fn, args.calls))
            times[label][1].append(per_call_us(new_fn, args.calls))

    print(f"{'':32s} {'old us/call':>12s} {'new us/call':>12s} {'old/new':>8s}   (median; min in brackets)")
    for label, (old_us, new_us) in times.items():
        ratio = statistics.median(o / n for o, n in zip(old_us, new_us, strict=True))
        print(f"{label:32s} {statistics.median(old_us):7.1f} ({min(old_us):5.1f}) "
              f"{statistics.median(new_us):6.1f} ({min(new_us):5.1f}) {ratio:7.1f}x")


if __name__ == "__main__":
    main()
