"""Shared by the delivery tests and their child processes: sample events, enrollment, hub/agent mains.

Run as a script (`python tests/delivery_support.py hub|agent ...`) it becomes a real hub or agent
process, so tests can kill -9 it.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.messages import MediaKind, MediaRef, NormBox, ProblemEvent, ProblemState


def small_jpeg(seed: int = 0, size_wh: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size_wh[1], size_wh[0], 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


def make_event(device_id: str, n: int, jpeg: bytes, *, state: ProblemState = ProblemState.OPENED,
               event_id: str | None = None) -> tuple[ProblemEvent, dict[str, bytes]]:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    ref = MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(jpeg),
                   sha256=hashlib.sha256(jpeg).hexdigest())
    event = ProblemEvent(event_id=event_id or f"ev-{device_id}-{n:06d}", problem_id=f"pr-{n // 10:06d}",
                         device_id=device_id, camera_id="cam1", class_id="illegal_parking", state=state,
                         box=NormBox(x1=0.1, y1=0.1, x2=0.5, y2=0.5), score=0.9, first_seen=now,
                         observed_at=now, dwell_s=60.0, media=[ref])
    return event, {"snapshot.jpg": jpeg}


# --- real processes: `python tests/delivery_support.py hub DATA_DIR PORT` / `agent ...` ---

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hub_main(data_dir: str, port: str) -> None:
    import signal
    import threading

    from hub.ingest.config import IngestConfig
    from hub.ingest.loop import IngestLoop
    from hub.storage.store import Store

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = Store.open(None, Path(data_dir))
    loop = IngestLoop(IngestConfig(bind=f"tcp://127.0.0.1:{port}", data_dir=Path(data_dir)), store, stop)
    threading.Thread(target=lambda: (loop.ready.wait(), print("READY", flush=True)), daemon=True).start()
    loop.run()


def agent_main(bundle_path: str, spool_dir: str, count: str, log_path: str) -> None:
    """Submit events 0..count-1 not yet in `log_path` (one id per line once durable), then deliver
    until the spool is empty; exit 0. Killed with -9 at any point, a rerun finishes the job."""
    from edge_agent.deliver import Outbox, OutboxConfig
    from protocol.bundle import DeviceBundle

    bundle = DeviceBundle.load(Path(bundle_path))
    log = Path(log_path)
    done = set(log.read_text().split()) if log.exists() else set()
    config = OutboxConfig(spool_dir=Path(spool_dir), ack_timeout_s=1.0, max_backoff_s=2.0,
                          reconnect_ivl_max_ms=500, heartbeat_s=1.0)
    jpeg = small_jpeg()
    with Outbox(bundle, config) as outbox, open(log, "a") as out:
        print("STARTED", flush=True)
        for n in range(int(count)):
            event, media = make_event(bundle.device_id, n, jpeg)
            if event.event_id in done:
                continue
            outbox.submit(event, media)
            out.write(event.event_id + "\n")
            out.flush()  # page cache survives kill -9 of this process
        while not outbox.wait_drained(1.0):
            pass
    print("DRAINED", flush=True)


if __name__ == "__main__":
    {"hub": hub_main, "agent": agent_main}[sys.argv[1]](*sys.argv[2:])
