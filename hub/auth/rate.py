"""Sign-in attempts per client address in a sliding minute, in this process's memory.

Lockout (hub.auth.users) protects each account; this limits one address trying many accounts. Several
API processes each keep their own count, so the effective limit is per process.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class AttemptLimiter:
    def __init__(self, per_minute: int, *, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str, now: float | None = None) -> float:
        """Count an attempt by `client`; 0 when allowed, else the seconds until the next one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._attempts) >= self.max_clients:  # bounded memory: forget idle clients
                for key in [k for k, q in self._attempts.items() if not q or now - q[-1] > 60]:
                    del self._attempts[key]
            q = self._attempts.setdefault(client, deque())
            while q and now - q[0] >= 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return 60 - (now - q[0])
            q.append(now)
            return 0.0
