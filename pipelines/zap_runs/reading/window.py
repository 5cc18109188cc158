"""The sync's window: where it starts from the cursor, and loud words about gaps between syncs."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..common.clock import iso, span
from .rows import parse_time


def plan_window(cursor: datetime | None, since: datetime | None, force_since: bool,
                lookback: timedelta, to_date: datetime) -> datetime | None:
    """from_date of this sync; None lets the API apply its default (the last 30 days)."""
    if since is not None and (force_since or cursor is None):
        return since
    if cursor is not None:
        return min(cursor - lookback, to_date)
    return None


def gap_warnings(state: dict, from_date: datetime | None, to_date: datetime,
                 warn_after: timedelta, retention: timedelta) -> list[str]:
    """Loud words when the last successful sync is old, and which runs may be gone for good."""
    last = state.get("last_window") or [None, None]
    last_to = parse_time(last[1]) if last[1] else None
    if last_to is None:
        return []
    out = []
    gap = to_date - last_to
    if gap > warn_after:
        out.append(f"the last successful sync ended {span(gap)} ago ({iso(last_to)}), more than "
                   f"gap_warning_hours ({warn_after.total_seconds() / 3600:g} h)")
    purged_before = to_date - retention
    if from_date is not None and purged_before > from_date:
        out.append(f"Zapier keeps run history about {retention.days} days: runs that started between "
                   f"{iso(from_date)} and {iso(purged_before)} may have been purged before this "
                   "sync could read them; that data may be lost for good")
    return out

