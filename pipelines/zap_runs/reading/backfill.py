"""A long main window (a new account's 30 days, an account back after days) read in parts, so
a pass's backfills share its pages (accounts/sweep.py): the longest part from the window's start that
fits the pages left, found with one-run count requests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from .rows import parse_time
from .window import plan_window

# A main window longer than this is counted before it is read, to read a long backfill in parts.
COUNT_WINDOWS_OVER = timedelta(hours=24)
API_DEFAULT_WINDOW = timedelta(days=30)
# Count requests spent at most to find a part of a long window that fits the pages per pass.
PART_COUNTS = 5


class Deferred(Exception):  # noqa: N818 - a signal, not an error
    """The account's backfill waits for the next pass: this pass's pages for backfills are spent."""


def long_window(state: dict, options, now: datetime) -> datetime | None:
    """The start of the account's main window when it is long enough to count first, else None.
    An account synced within the day is never counted: a quiet account's cursor (its newest
    run) may be old while its window holds few runs."""
    o = options
    cursor = None if o.full_refresh else parse_time(state.get("cursor"))
    last_to = parse_time((state.get("last_window") or [None, None])[1])
    if cursor is not None and last_to is not None and not state.get("backfill_until") \
            and now - last_to <= COUNT_WINDOWS_OVER:
        return None
    from_date = plan_window(cursor, o.since, o.force_since, o.lookback, now) \
        or now - API_DEFAULT_WINDOW
    return from_date if now - from_date > COUNT_WINDOWS_OVER else None


def part_end(count: Callable[[datetime], int | None], from_date: datetime, now: datetime,
             most: int) -> datetime | None:
    """Where the part of [from_date, now) to read ends: None when all of it holds at most
    `most` runs; else the longest part from from_date that does. Runs are rarely spread evenly
    (a history may start late in the window), so the end is searched between a part that fits
    (lo) and one that does not (hi), guessing where the count reaches the cap."""
    total = count(now)
    if total is None or total <= most:
        return None
    lo, lo_n, hi, hi_n = from_date, 0, now, total
    for _ in range(PART_COUNTS - 1):
        guess = lo + (hi - lo) * ((0.9 * most - lo_n) / (hi_n - lo_n))
        found = count(guess)
        if found is None:
            break
        if found <= most:
            lo, lo_n = guess, found
            if found >= most / 2:
                break
        else:
            hi, hi_n = guess, found
    return lo if lo > from_date else from_date + (hi - from_date) / 2
