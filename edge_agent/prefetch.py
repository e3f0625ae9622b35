"""Read-ahead on a thread: a source's frames decoded while the pipeline works on the last ones.

Decoders (FFmpeg through PyAV or OpenCV) release the GIL, so a few streams decoding on their own
threads use every core while the pipeline's thread runs the detector and the rules.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class Prefetch(Iterator[T]):
    """Iterates `source` on a daemon thread, at most `depth` items ahead; same items, same order.

    An exception in `source` is raised here, at the point it happened. `close()` (or dropping the
    iterator) lets the thread end."""

    def __init__(self, source: Iterable[T], depth: int = 4, name: str = "prefetch") -> None:
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._closed = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(iter(source),), name=name, daemon=True)
        self._thread.start()

    def _run(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failure(exc))

    def _put(self, item: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item  # type: ignore[return-value]  # not the end marker: an item

    def close(self) -> None:
        self._closed.set()
        self._done = True

    def __del__(self) -> None:
        self._closed.set()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
