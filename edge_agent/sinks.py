"""Event sinks that need no network: a folder (replays, stand-alone agents) and memory (tests, bench).

The delivery outbox is the production sink; it implements the same `EventSink.submit`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from protocol.messages import ProblemEvent


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class FolderSink:
    """Writes each event to `root/<event_id>/` (event.json + its media files) and appends one JSON line
    to `root/events.jsonl`. The event folder is renamed into place only when complete, so a reader
    (or a crash) never sees half an event."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.events: list[ProblemEvent] = []
        self._lock = threading.Lock()

    def submit(self, event: ProblemEvent, media: Mapping[str, bytes]) -> None:
        missing = {m.name for m in event.media} - set(media)
        if missing:
            raise ValueError(f"event {event.event_id}: media {sorted(missing)} not supplied")
        final = self.root / event.event_id
        staging = self.root / f".{event.event_id}.partial"
        staging.mkdir(exist_ok=True)
        for ref in event.media:
            _write_durably(staging / ref.name, media[ref.name])
        body = event.model_dump_json(indent=2).encode()
        _write_durably(staging / "event.json", body)
        os.replace(staging, final)
        with self._lock:
            with open(self.root / "events.jsonl", "a", encoding="utf-8") as f:
                f.write(event.model_dump_json() + "\n")
            self.events.append(event)


class MemorySink:
    """Keeps events and media in memory."""

    def __init__(self) -> None:
        self.items: list[tuple[ProblemEvent, dict[str, bytes]]] = []
        self._lock = threading.Lock()

    @property
    def events(self) -> list[ProblemEvent]:
        return [e for e, _ in self.items]

    def submit(self, event: ProblemEvent, media: Mapping[str, bytes]) -> None:
        with self._lock:
            self.items.append((event, dict(media)))


def read_folder_events(root: str | Path) -> list[ProblemEvent]:
    """Events a FolderSink wrote, in submission order."""
    path = Path(root) / "events.jsonl"
    if not path.exists():
        return []
    return [ProblemEvent.model_validate(json.loads(line)) for line in path.read_text().splitlines() if line]
