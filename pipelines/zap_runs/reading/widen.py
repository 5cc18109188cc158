"""A quiet account reads its watched runs with its new ones: when every run since the oldest
watched one fits in one page, a main window reaching back that far costs one request, where the
open and error listings beside a short window cost two or three (incremental.py).

Whether it fits is known before asking: each sync counts the runs of its main window by hour
of start (`runs_by_hour` in the account's state, kept for WIDEN_HOURS), and the hours since the
cursor are guessed from the last day's pace. A span with an hour no sync has counted is never
widened, so an account is only widened on what it is known to hold; a wrong guess costs pages,
never a run (a wide window is a long lookback, which the sync has always allowed).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

HOUR = 3600.0
# Hours counted back from now: eight days, past the replay horizon (72 h by default) and the
# Delays of a few days that keep quiet accounts' runs open.
WIDEN_HOURS = 192
# Widen only when the runs expected fill at most this share of a page: a guess, with room.
FILL = 0.6


def _bucket(when: datetime) -> int:
    return int(when.timestamp() // HOUR)


class Hours:
    """Runs counted by hour of start: a first hour and a list of counts (None: not counted),
    compact in the state (a list of small ints per account, however many accounts)."""

    def __init__(self, saved: list | None = None) -> None:
        self.first, self.counts = (saved[0], list(saved[1])) if saved else (0, [])

    def get(self, hour: int) -> int | None:
        i = hour - self.first
        return self.counts[i] if 0 <= i < len(self.counts) else None

    def set(self, hour: int, count: int) -> None:
        if not self.counts:
            self.first, self.counts = hour, [count]
            return
        if hour < self.first:
            self.counts[:0] = [None] * (self.first - hour)
            self.first = hour
        i = hour - self.first
        if i >= len(self.counts):
            self.counts.extend([None] * (i + 1 - len(self.counts)))
        self.counts[i] = count

    def keep_from(self, hour: int) -> None:
        if hour > self.first:
            del self.counts[:hour - self.first]
            self.first = hour

    def dump(self) -> list:
        return [self.first, self.counts] if self.counts else []


def count_hours(saved: list | None, starts: list[datetime | None],
                window: tuple[datetime, datetime], now: datetime) -> list:
    """The saved counts with the runs a main window listed (their start times) counted in:
    hours the window covers whole are set, hours at its edges keep the larger count; hours
    older than WIDEN_HOURS are let go."""
    hours = Hours(saved)
    counts = Counter(_bucket(start) for start in starts if start is not None)
    first = math.ceil(window[0].timestamp() / HOUR)
    last = _bucket(window[1])  # the hour the window ends in is not whole
    oldest = _bucket(now) - WIDEN_HOURS
    for hour in range(max(first, oldest), last):
        hours.set(hour, counts.get(hour, 0))
    for hour, count in counts.items():
        if (hour < first or hour >= last) and oldest <= hour <= _bucket(now):
            hours.set(hour, max(hours.get(hour) or 0, count))
    hours.keep_from(oldest)
    return hours.dump()


def expected_runs(saved: list | None, start: datetime, cursor: datetime,
                  now: datetime) -> float | None:
    """Runs expected in [start, now): counted hours up to the cursor, the last day's pace after
    it; None when an hour of the span was never counted."""
    hours = Hours(saved)
    counted = 0
    for hour in range(_bucket(start), _bucket(cursor) + 1):
        count = hours.get(hour)
        if count is None:
            return None
        counted += count
    day = range(_bucket(cursor) - 23, _bucket(cursor) + 1)
    pace = sum(hours.get(hour) or 0 for hour in day) / 24
    return counted + pace * max(0.0, (now - cursor).total_seconds() / HOUR)


def widened(hist: list | None, reach: dict[str, datetime], cursor: datetime,
            lookback: timedelta, now: datetime, page_limit: int) -> timedelta:
    """The lookback this sync uses. `reach` holds, per kind of watched run (open, error,
    unlisted), where the oldest one lies: the window reaches back as far as fits in one page
    with the new runs, trying the oldest kind's start first (then no listing is left), then
    each nearer one (a kind it covers whole needs no listing); else `lookback` stands."""
    short = cursor - lookback
    starts = sorted({min(reach.values()), *reach.values()}) if reach else []
    for start in starts:
        if start >= short:
            return lookback
        expected = expected_runs(hist, start, cursor, now)
        if expected is not None and expected <= FILL * page_limit:
            return cursor - start + timedelta(seconds=1)
    return lookback


def recent_pace(saved: list | None, now: datetime, hours: float) -> float | None:
    """Runs an hour lately: the whole hours counted before `now`, each weighted by
    exp(-age / hours) (the last hours count most); None when no whole hour was counted."""
    counted = Hours(saved)
    total = weights = 0.0
    for i, count in enumerate(counted.counts):
        hour = counted.first + i
        age = _bucket(now) - hour
        if count is None or age < 1:
            continue
        weight = math.exp(-age / hours)
        total, weights = total + count * weight, weights + weight
    return total / weights if weights else None
