"""Replays of many cameras alternate two halves so the detector and the Python stages overlap: each
camera must still see exactly what it sees replayed alone (its own detections, in order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.config import parse_camera_config
from edge_agent.ingest import FileReplay
from edge_agent.pipeline import OVERLAP_FROM_CAMERAS, Pipeline
from edge_agent.sinks import MemorySink
from tests.edge_agent.edge_fakes import ScriptedDetector
from tests.edge_agent.test_streams import numbered_video


def _box_from_pixels(image: np.ndarray) -> list[tuple[str, tuple[float, float, float, float]]]:
    """A car whose box depends on the frame's grey level and size: a detection given to the wrong
    camera or frame shows up as a wrong box."""
    level, (h, w) = float(image.mean()), image.shape[:2]
    return [("car", (level / 4, level / 8, level / 4 + w / 3, level / 8 + h / 3))]


def _tracks_per_frame(videos: dict[str, Path]) -> dict[str, list[tuple[int, list[tuple[float, ...]]]]]:
    cameras = [parse_camera_config({"id": cid, "source": str(v), "timezone": "UTC", "detect_fps": 2,
                                    "motion": {"enabled": False}, "evidence": {"clip": False}})
               for cid, v in videos.items()]
    pipeline = Pipeline(cameras, ScriptedDetector(script=_box_from_pixels), MemorySink(), device_id="box",
                        ground=None)
    seen: dict[str, list[tuple[int, list[tuple[float, ...]]]]] = {cid: [] for cid in videos}

    def on_frame(frame) -> None:
        tracks = pipeline.cameras[frame.camera_id].tracks
        seen[frame.camera_id].append((frame.index, [tuple(round(v, 3) for v in t.xyxy) for t in tracks]))

    pipeline.run_replays({cid: FileReplay(cid, v, sample_fps=2, start_time=1000.0) for cid, v in videos.items()},
                         on_frame)
    return seen


def test_each_camera_sees_what_it_sees_alone(tmp_path: Path) -> None:
    videos = {f"cam{i}": numbered_video(tmp_path / f"v{i}.mp4", frames=16 + 6 * i, size=(96 + 32 * i, 64 + 16 * i))
              for i in range(OVERLAP_FROM_CAMERAS + 1)}  # different sizes and lengths: halves run out unevenly
    together = _tracks_per_frame(videos)
    for cid, video in videos.items():
        alone = _tracks_per_frame({cid: video})[cid]
        assert together[cid] == alone and len(alone) == FileReplay(cid, video, sample_fps=2).expected_samples()
        assert all(tracks for _, tracks in alone)
