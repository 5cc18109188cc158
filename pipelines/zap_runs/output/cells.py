"""What the dashboard's tables and charts write alike: zap labels, times and rates, escaped."""

from __future__ import annotations

import html
from datetime import date, datetime

from ..common.clock import as_utc

NONE = "–"  # a rate with nothing to divide by, a step no status names
TITLE_CHARS = 60


def key(row: dict) -> tuple[str, int]:
    """A zap's identity: its id is unique only within its account."""
    return row["account_id"], row["zap_id"]


def title(zap: dict | None, zap_id: int) -> str:
    """The zap's title (its id when it has none), cut short and escaped."""
    text = (zap or {}).get("zap_title") or f"zap {zap_id}"
    return html.escape(text[:TITLE_CHARS])


def label(titles: dict, zap: tuple[str, int], partner: bool) -> str:
    """The zap's title; on the partner-wide page with its account, as ids repeat across them."""
    text = title(titles.get(zap), zap[1])
    return f"{text} · {html.escape(zap[0][:30])}" if partner else text


def when(value: datetime | None, missing: str = "never") -> str:
    """A time as the tables show it (seconds, UTC); `missing` when there is none."""
    return html.escape(str(value or missing))[:19]


def minute(value: datetime | None) -> str:
    """A time to the minute, in UTC."""
    value = as_utc(value)
    return NONE if value is None else f"{value:%Y-%m-%d %H:%M}"


def day_text(day: date) -> str:
    return f"{day:%Y-%m-%d}"


def rate(failed: int, finished: int) -> float | None:
    return failed / finished if finished else None
