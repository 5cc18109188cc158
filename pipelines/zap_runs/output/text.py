"""How numbers and times read in what people see: shares, windows, how long ago."""

from __future__ import annotations

from datetime import UTC, datetime

from ..clock import span

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
