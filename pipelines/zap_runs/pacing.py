"""Client-side pacing: requests spaced evenly under the allowed rate, so 429s never happen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Spacing is a hair wider than 60/rate: server clocks and network jitter can bunch requests.
SAFETY = 1.01


class Pacer:
    """Blocks until the next request may start; `rate` is requests per minute (None: no limit)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 0.0 if not rate else 60.0 / rate * SAFETY
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        # The wait so far, read by other threads while `_lock` is held through a sleep.
        self._tally = threading.Lock()
        self._waited = 0.0
        self._waiting_since: float | None = None

    @property
    def waited(self) -> float:
        """Seconds spent waiting so far (pacing, Retry-After, cooldowns), the wait under way
        included: a progress display may read it from another thread at any time."""
        with self._tally:
            since = self._waiting_since
            return self._waited + (self._clock() - since if since is not None else 0.0)

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                with self._tally:
                    self._waiting_since = now
                try:
                    self._sleep(self._next - now)
                finally:
                    with self._tally:
                        self._waited += self._clock() - now
                        self._waiting_since = None
                now = self._next
            self._next = now + self.interval

    def hold(self, seconds: float) -> None:
        """Nothing may be sent for `seconds` (a Retry-After or a cooldown)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)
