"""Clocks for the simulated world: the real UTC clock, one tests step by hand, and virtual time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class RealClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when a test calls `advance` or `set`.

    The simulator's worlds and token lifetimes follow it; the simulator's rate rule keeps real
    time (a test stepping the world by days still meets a real 60 requests a minute).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            if delta < timedelta(0):
                raise ValueError(f"a clock never goes backwards: cannot advance by {delta}")
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            if when < self._now:
                raise ValueError("a ManualClock never goes backwards")
            self._now = when


class VirtualClock(ManualClock):
    """Simulated time one process shares: the simulator and a sync (its pacer, its waits) on it.

    It moves only when told, and never backwards; every method is thread-safe:

    - `now()`: an aware UTC datetime (the worlds, token lifetimes, the sync's "now");
    - `monotonic()`: seconds since the clock was made, as `time.monotonic` gives (a pacer's and
      the simulator's rate rule's clock);
    - `sleep(seconds)`: returns at once, the clock moved on by `seconds` (each sleeper moves
      it: two threads sleeping a second each move it two seconds, so pace from one thread);
    - `advance(timedelta)` and `set(datetime)`: move it by hand (a load that took 3 s of real
      time advances it by 3 s).

    A simulator given one (`Simulator(clock=VirtualClock())`) also runs its rate rule,
    `Retry-After` and `X-RateLimit-Reset` on it: a day at 150 requests a minute takes as long as
    its requests take to serve, not a day. Processes apart share one through a file
    (sharedclock.SharedClock, a VirtualClock too).
    """

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        if self._now.tzinfo is None or self._now.utcoffset() != timedelta(0):
            raise ValueError(f"a VirtualClock starts at an aware UTC time, not {self._now!r}")
        self._origin = self._now

    def monotonic(self) -> float:
        with self._lock:
            return (self._now - self._origin).total_seconds()

    def time(self) -> float:
        """Seconds since the epoch, as `time.time` gives."""
        return self.now().timestamp()

    def sleep(self, seconds: float) -> None:
        if not seconds >= 0:  # NaN too
            raise ValueError(f"cannot sleep {seconds} seconds")
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f"VirtualClock({self.now().isoformat()})"


def timers(clock: RealClock | ManualClock) -> tuple[Callable[[], float], Callable[[], float]]:
    """(monotonic, time) for a simulator on `clock`: the virtual clock's own, else real time."""
    if isinstance(clock, VirtualClock):
        return clock.monotonic, clock.time
    return time.monotonic, time.time
