"""Zapier's documented rate rule: N requests per window per client, then a cooldown after a 429."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """A sliding window per client; once exceeded, the client is refused until the cooldown ends."""

    def __init__(self, limit: int | None = 60, window: float = 60.0, cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock  # seconds, as time.monotonic (a VirtualClock's on virtual time)
        self.window = window
        self.cooldown = cooldown
        self._seen: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def check(self, client: str) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the client may try again)."""
        if self.limit is None:
            return True, 1_000_000, 0.0
        now = self.clock()
        with self._lock:
            blocked = self._blocked_until.get(client, 0.0)
            if now < blocked:
                self.refused += 1
                return False, 0, blocked - now
            seen = self._seen[client]
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                self._blocked_until[client] = now + self.cooldown
                self.refused += 1
                return False, 0, self.cooldown
            seen.append(now)
            return True, self.limit - len(seen), (seen[0] + self.window - now)
