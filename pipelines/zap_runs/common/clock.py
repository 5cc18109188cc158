"""The sync's clock, and how it writes times: ISO text for the API and its state, spans for people.

Every "now", wait and elapsed time of a sync goes through here, so a benchmark can run the
shipping code on simulated time (`use(clock)`: an object with now(), monotonic() and sleep(), such
as the simulator's VirtualClock): a simulated day in minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


_clock: Clock | None = None  # None: real time


def utcnow() -> datetime:
    """The sync's clock (tests of long gaps move it)."""
    return datetime.now(UTC) if _clock is None else _clock.now()


def is_virtual() -> bool:
    """Whether the sync runs on a clock of its own (simulated time)."""
    return _clock is not None


def monotonic() -> float:
    return time.monotonic() if _clock is None else _clock.monotonic()


def sleep(seconds: float) -> None:
    if _clock is None:
        time.sleep(seconds)
    else:
        _clock.sleep(seconds)


def wall() -> float:
    """Seconds since the epoch (a Unix-time X-RateLimit-Reset is read against it)."""
    return time.time() if _clock is None else _clock.now().timestamp()


@contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Run the sync on `clock` inside the block (a benchmark's simulated time)."""
    global _clock
    before, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = before


def as_utc(value: object) -> datetime | None:
    """A timestamp as the warehouse gives it back (naive UTC in DuckDB, aware in PostgreSQL,
    ISO text elsewhere) as an aware UTC datetime; None for anything else."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span(delta: timedelta) -> str:
    """A span of time for people: hours, or days from two days on."""
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
