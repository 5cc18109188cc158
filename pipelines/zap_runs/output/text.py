"""How numbers and times read in what people see: shares, windows, how long ago."""

from __future__ import annotations

from datetime import UTC, datetime

from ..common.clock import span

API_DEFAULT = "API default (last 30 days)"  # a window without from_date


def pct(value: float | None, missing: str = "n/a") -> str:
    """A share in 0..1 as a whole percentage; `missing` where there is none."""
    return missing if value is None else f"{value:.0%}"


def when(value: datetime | None, missing: str) -> str:
    """A time in UTC to the second; `missing` where there is none."""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if value else missing


def window_text(start: datetime | None, end: datetime | None) -> str:
    """A sync's window [start, end); no start is the API's default window."""
    return f"{when(start, API_DEFAULT)} -> {when(end, '?')}"


def ago(value: datetime | None, now: datetime) -> str:
    """A past time and how long before `now` it was; "never" where there is none."""
    return f"{when(value, '')} ({span(now - value)} ago)" if value else "never"


def took(start: datetime | None, end: datetime | None) -> str:
    """How long from start to end, for people: seconds, or minutes from two minutes on."""
    if start is None or end is None:
        return "?"
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


def minutes(requests: int, rate: float) -> str:
    """The minutes `requests` take at `rate` requests a minute (seconds, under 6 of them)."""
    spent = requests / rate
    return f"{spent * 60:.1f} s" if spent < 0.1 else f"{spent:,.1f} min"


def needed_text(budget: int | None, checks: int = 0) -> str:
    """What reading what changed takes (spend.Budget.total, B), and the `checks` that keep a
    sync exact beyond it (Spend.checks: lookback, unlisted statuses, late failures), in words."""
    if budget is None:
        return "not known (a sync log from an older version)"
    text = "1 request, to see that nothing had changed" if budget == 0 else \
        f"about {budget:,} request{'s' * (budget != 1)} to read what changed"
    if checks:
        text += f", plus {checks:,} to stay exact (lookback, late and unlisted runs)"
    return text
