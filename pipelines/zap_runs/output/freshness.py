"""Each account's freshness for people: when the sync last read it, when it is next due and why;
`status` reads it from the accounts' current state rows, the dashboard from account_freshness.

Both judge alike (the mart's header says it in SQL): an account is overdue when it came due
before the newest pass started and that pass did not read it, and beyond its max_staleness when
it has gone unread longer than the max_staleness its plan kept to (stored in its row). An
account neither overdue nor beyond is on schedule: a pass that did not read it found it not due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import dlt

from ..accounts.state import current_rows
from ..common.clock import as_utc, span
from .text import ago, when

COLUMNS = ("last_read_at", "next_due_at", "due_reason", "max_staleness_hours")
TABLE_ROWS = 25  # accounts the dashboard's table lists


@dataclass
class Freshness:
    """An account's current state row, as far as its schedule goes."""

    account: str
    last_read_at: datetime | None
    next_due_at: datetime | None
    due_reason: str | None
    max_staleness_hours: float | None

    def hours_since_read(self, now: datetime) -> float | None:
        if self.last_read_at is None:
            return None
        return (now - self.last_read_at).total_seconds() / 3600

    def is_overdue(self, pass_started_at: datetime | None) -> bool:
        """Due before the newest pass started, which did not read it (a read moves the due time
        past the pass's start)."""
        return (self.next_due_at is not None and pass_started_at is not None
                and self.next_due_at < pass_started_at)

    def is_beyond_max_staleness(self, now: datetime) -> bool:
        hours = self.hours_since_read(now)
        return (hours is not None and self.max_staleness_hours is not None
                and hours > self.max_staleness_hours)

    def is_on_schedule(self, pass_started_at: datetime | None, now: datetime) -> bool:
        """Not read lately for no fault of the sync: planned, not overdue, within max_staleness."""
        return (self.next_due_at is not None and not self.is_overdue(pass_started_at)
                and not self.is_beyond_max_staleness(now))


def read_freshness(pipeline: dlt.Pipeline) -> dict[str, Freshness]:
    """Every account's Freshness from its current row of zap_runs_account_state ({} before the
    table's first load; a table from before schedules gives None for what it lacks)."""
    return {name: Freshness(name, as_utc(row["last_read_at"]), as_utc(row["next_due_at"]),
                            row["due_reason"], _number(row["max_staleness_hours"]))
            for name, row in current_rows(pipeline, COLUMNS).items()}




def _number(value: object) -> float | None:
    return None if value is None else float(value)


def due_text(f: Freshness, now: datetime, pass_started_at: datetime | None) -> str:
    """When the account is next due and why, for people."""
    reason = f": {f.due_reason}" if f.due_reason else ""
    if f.next_due_at is None:
        at = ("when its credentials change" if (f.due_reason or "").startswith("refused")
              else "at the next pass")
        return f"{at}{reason}"
    if f.next_due_at > now:
        return f"{when(f.next_due_at, '')} (in {span(f.next_due_at - now)}){reason}"
    late = ", OVERDUE: the last pass did not read it" if f.is_overdue(pass_started_at) else ""
    return f"{ago(f.next_due_at, now)}{late}{reason}"


def read_text(f: Freshness, now: datetime) -> str:
    """When the account was last read, and whether that is beyond its max_staleness."""
    beyond = (f", BEYOND max_staleness ({f.max_staleness_hours:g} h)"
              if f.is_beyond_max_staleness(now) else "")
    return f"{ago(f.last_read_at, now)}{beyond}"


def least_fresh_first(rows: list[Freshness], now: datetime,
                      pass_started_at: datetime | None) -> list[Freshness]:
    """Overdue first, then beyond max_staleness, then the longest unread (never read first)."""
    return sorted(rows, key=lambda f: (not f.is_overdue(pass_started_at),
                                       not f.is_beyond_max_staleness(now),
                                       f.last_read_at is not None,
                                       f.last_read_at or now, f.account))


def counts_text(rows: list[Freshness], now: datetime, pass_started_at: datetime | None) -> str:
    """One line: how many accounts are overdue and beyond max_staleness, and the least fresh."""
    overdue = sum(f.is_overdue(pass_started_at) for f in rows)
    beyond = sum(f.is_beyond_max_staleness(now) for f in rows)
    text = (f"{len(rows):,} account{'s' * (len(rows) != 1)}: {overdue:,} overdue, {beyond:,} "
            "beyond max_staleness")
    read = [f for f in rows if f.last_read_at is not None]
    if read:
        oldest = min(read, key=lambda f: (f.last_read_at, f.account))
        text += f"; least fresh {oldest.account}, read {ago(oldest.last_read_at, now)}"
    return text


def freshness_object(f: Freshness, now: datetime, pass_started_at: datetime | None) -> dict:
    """The account's freshness for `status --json` (times as ISO text)."""
    hours = f.hours_since_read(now)
    return {"account": f.account,
            "last_read_at": f.last_read_at.isoformat() if f.last_read_at else None,
            "next_due_at": f.next_due_at.isoformat() if f.next_due_at else None,
            "due_reason": f.due_reason,
            "hours_since_read": None if hours is None else round(hours, 3),
            "max_staleness_hours": f.max_staleness_hours,
            "is_overdue": f.is_overdue(pass_started_at),
            "is_beyond_max_staleness": f.is_beyond_max_staleness(now)}
