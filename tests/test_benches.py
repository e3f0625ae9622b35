"""The benchmarks end to end at a small size: they must keep running against the real hub code (CI
runs them nowhere else), and their figures must come from the work they claim to measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.shared_data import shared_file

ROOT = Path(__file__).resolve().parents[1]


def test_ingest_bench_runs_the_full_path_and_prints_its_figures() -> None:
    agents, events = 3, 12
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--agents", str(agents), "--events", str(events),
         "--processes", "2", "--fresh-tree"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # The bench exits on any NACK or missing ACK; these counts are ACKs after the hub's commit.
    for name in ("bare DEALER/ROUTER echo", "full path (CURVE+sig+JPEG+store)"):
        line = re.search(rf"^{re.escape(name)}\s+(\d+) events/s .*\((\d+) events in", out, re.M)
        assert line, f"no line for {name!r} in:\n{out}"
        assert int(line.group(1)) > 0 and int(line.group(2)) == agents * events
    assert re.search(r"^M=3 agents, window 8, .* 2 ingest process\(es\)", out, re.M)
    assert re.search(r"hub peak memory \d+ MB", out)
    ceiling = re.search(r"ceiling for that work alone on \d+ CPUs: (\d+) events/s .* ratio full/ceiling: ([0-9.]+)",
                        out)
    assert ceiling and int(ceiling.group(1)) > 0 and 0 < float(ceiling.group(2)) < 1
    assert re.search(r"target >= 2000 events/s: (met|NOT met)$", out, re.M)


def test_stats_bench_times_statistics_read_from_the_covering_indexes() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "stats.py"), "--cases", "600", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"^SQLite: /stats over 30 days, 600 cases, 1800 events: \d+ ms \(median of 1\)$", out, re.M)
    assert re.search(r"per class \d+  per day \d+  median time to close \d+  per unit \d+  per camera \d+ \(ms\)", out)
    # The counts come from the indexes of schema step 4, not from scanning rows with their payloads.
    assert "plan, events per class: SEARCH events USING COVERING INDEX ix_events_observed" in out
    assert "plan, cases per class: SEARCH cases USING COVERING INDEX ix_cases_stats" in out


def test_edge_bench_prints_its_ceilings_and_the_ratio_reached() -> None:
    if not (ROOT.parent / "shared" / "fixtures" / "video" / "vtest.avi").is_file():
        import pytest

        pytest.skip("vtest.avi is not in ../shared/fixtures: the edge bench has nothing to replay")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "edge.py"), "--streams", "2", "--seconds", "4",
                           "--no-gating-off", "--feature", "stills_only={evidence: {clip: false}}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "2 streams of vtest.avi (4 s each, 384x288 H.264 sub-stream + 768x576 main stream)" in out
    decode = re.search(r"^decode-only ceiling: +([0-9.]+) streams", out, re.M)
    detect = re.search(r"^detect-only ceiling: +([0-9.]+) frames/s \(1 session x \d+ threads: ([0-9.]+); "
                       r"\d+ sessions x 1 thread: ([0-9.]+)\)", out, re.M)
    assert decode and detect and float(decode.group(1)) > 0 and float(detect.group(1)) > 0
    gated = re.search(r"^gating on : +([0-9.]+) streams sustained .* detect calls (\d+)/16 sampled frames", out, re.M)
    assert gated and float(gated.group(1)) > 0 and int(gated.group(2)) >= 2  # the first frame of each camera
    ratio = re.search(r"both on the same cores: ([0-9.]+) streams; ratio reached: ([0-9.]+)$", out, re.M)
    assert ratio and float(ratio.group(1)) > 0 and float(ratio.group(2)) > 0
    assert re.search(r"^feature stills_only: +[0-9.]+ streams sustained with it, [0-9.]+ without", out, re.M)
    assert re.search(r"^target >= 32 streams at 2 detect-fps with gating: (meets|misses) \([0-9.]+\)$", out, re.M)
    assert "not supported with codec" not in proc.stderr  # no per-clip encoder warnings


def test_change_bench_compares_the_same_streams_with_change_rules_off_and_on() -> None:
    shared_file("video/vtest.avi")  # skips without ../shared
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "change.py"), "--streams", "1", "--seconds", "8",
                           "--rounds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    off = re.search(r"^round 1 change rules off: +([0-9.]+) streams .* (\d+) detections$", out, re.M)
    on = re.search(r"^round 1 change rules on : +([0-9.]+) streams .* (\d+) detections \| (\d+) analyses, "
                   r"([0-9.]+) ms each", out, re.M)
    assert off and on, out
    assert off.group(2) == on.group(2)  # the same detector work both ways: the difference is the change rules
    assert int(on.group(3)) == 8 and float(on.group(4)) > 0  # one analysis a second
    assert re.search(r"CPU per stream x[0-9.]+: change rules cost -?[0-9.]+% of capacity", out)
    assert re.search(r"^target cost <= 15%: (met|NOT met)$", out, re.M)


def test_zone_state_bench_compares_the_same_streams_with_state_rules_off_and_on() -> None:
    shared_file("video/vtest.avi")  # skips without ../shared
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "zone_state.py"), "--streams", "1", "--seconds", "8",
                           "--rounds", "1", "--every", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    off = re.search(r"^round 1 state rules off: +([0-9.]+) streams .* (\d+) detections$", out, re.M)
    on = re.search(r"^round 1 state rules on : +([0-9.]+) streams .* (\d+) detections \| (\d+) head checks, "
                   r"([0-9.]+) ms each", out, re.M)
    assert off and on, out
    assert off.group(2) == on.group(2)  # the same detector work both ways: the difference is the state rules
    assert int(on.group(3)) == 2 * 4 and float(on.group(4)) > 0  # two rules, every 2 s over 8 s
    assert re.search(r"x[0-9.]+\): 2 state rules every 2 s cost -?[0-9.]+% of a core per stream", out)
