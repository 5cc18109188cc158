"""Which accounts a pass reads, and the schedule each one's state row records (schedule.py says
when an account is due; this applies it to one pass: its budget, the accounts held back, the
columns written).

An account that cannot succeed costs no request: one whose token was refused waits for new
credentials (its row keeps their fingerprint), one whose requests failed in three passes (while
others succeeded) is paused for a day (sweep.py). A scheduled invocation still looks at each
(`skipped`), so its exit code tells the scheduler pass after pass. A loop, whose rounds come every
minute, holds them back instead: a failing account is tried again after FAILING_BACKOFF, a refused
one is looked at every max_staleness (or at once when its credentials change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..common import clock
from ..common.clock import as_utc, iso
from ..reading.rows import parse_time
from . import schedule
from .entries import Account

# New accounts' backfills take at most this share of a scheduled pass's requests, and keep it
# while they wait: the accounts already read get the rest first.
BACKFILL_SHARE = 0.25
# An account whose requests failed is tried again after these waits (then paused, sweep.py).
FAILING_BACKOFF = (timedelta(minutes=5), timedelta(minutes=15))


@dataclass
class Visits:
    """Which accounts a pass reads: every one (`scheduled` False: one account, --all-accounts,
    --since or --full-refresh), or the due ones, most valuable first, until `budget_minutes` of
    requests at the rate (or of time) are spent (schedule.py)."""

    scheduled: bool = False
    max_staleness: timedelta = timedelta(hours=6)
    shortest: timedelta = timedelta(0)  # a loop's load_every: no account twice between loads
    budget_minutes: float | None = None
    requests_per_hour: float | None = None  # what the plan spreads (None: no limit)
    stop: Callable[[], bool] | None = None  # asked before each account (a loop's SIGTERM)


class Planner:
    """The plan of one pass over `accounts` (name -> Account)."""

    def __init__(self, visits: Visits, accounts: dict[str, Account]) -> None:
        self.visits = visits
        self.accounts = accounts
        self.plan = schedule.plan([], None, visits.max_staleness, visits.shortest)
        self.due: int | None = None
        self.new: set[str] = set()  # never read, or still backfilling

    def entries(self, rows: dict[str, dict] | None = None,
                states: dict[str, dict] | None = None) -> list[schedule.Entry]:
        """Every account as the scheduler sees it, from the schedule columns of its current
        row (`rows`), or from its state (`states`: on the Delta lake, or when every state is
        read anyway)."""
        out = []
        for name, account in self.accounts.items():
            if states is not None:
                e = schedule.entry(name, states.get(name) or {})
                e.held_until, fingerprint, _ = held(states.get(name) or {}, self.visits, None)
            else:
                row = (rows or {}).get(name) or {}
                last = as_utc(row.get("last_read_at"))
                if last is None and row.get("worth") is None:  # a row from before schedules
                    last = as_utc(row.get("updated_at"))
                e = schedule.Entry(name, last, float(row.get("requests_per_read") or 1.0),
                                   float(row.get("worth") or schedule.FLOOR),
                                   as_utc(row.get("held_until")))
                fingerprint = row.get("refused_fingerprint")
            if fingerprint and fingerprint != account.fingerprint():
                e.held_until = None  # new credentials: try again at once
            if not self.visits.shortest:
                # An invocation looks at every such account (a refused or paused one without a
                # request): its exit code then tells the scheduler, pass after pass.
                e.held_until = None
            out.append(e)
        return out

    def choose(self, entries: list[schedule.Entry]) -> list[str]:
        """The accounts this pass reads, in order: every one, or the due ones (schedule.order)."""
        v = self.visits
        self.new = {e.name for e in entries if e.last_read is None}
        self.plan = schedule.plan([e for e in entries if e.held_until is None],
                                  v.requests_per_hour, v.max_staleness, v.shortest)
        if not v.scheduled:
            return list(self.accounts)
        listed, self.due = schedule.order(entries, self.plan, clock.utcnow())
        return [e.name for e in listed]

    def spent(self, started: float, requests: int, rate: float | None, name: str,
              new_left: bool) -> bool:
        """Whether the pass reads account `name` no more: asked to stop (a loop's SIGTERM), or
        its budget (of requests at `rate`, and of minutes since `started`) is spent; while new
        accounts wait (`new_left`), the others get (1 - BACKFILL_SHARE) of it."""
        v = self.visits
        if v.stop is not None and v.stop():
            return True
        if not v.scheduled or v.budget_minutes is None:
            return False
        share = 1.0 if name in self.new or not new_left else 1 - BACKFILL_SHARE
        if clock.monotonic() - started >= v.budget_minutes * 60 * share:
            return True
        return bool(rate) and requests >= v.budget_minutes * rate * share

    def columns(self, states: dict[str, dict]) -> dict[str, dict]:
        """Each written state's schedule columns: when it was last read, when it is next due and
        why, and how long it is held back."""
        now = clock.utcnow()
        out = {}
        for name, state in states.items():
            e = schedule.entry(name, state)
            value, why = schedule.worth(state.get("schedule") or {})
            until, fingerprint, held_why = held(state, self.visits, now)
            if held_why is not None:
                due, why = until, held_why
            elif state.get("backfill_until"):
                due, why = None, "backfilling: read in parts, a part a pass"
            elif e.last_read is None:
                due, why = None, "new: waits for its first read"
            else:
                due, why = self.plan.due_at(e), self.plan.reason(e, why)
            out[name] = {"last_read_at": e.last_read, "next_due_at": due, "due_reason": why,
                         "worth": value, "requests_per_read": e.cost,
                         "max_staleness_hours": self.visits.max_staleness.total_seconds() / 3600,
                         "held_until": until, "refused_fingerprint": fingerprint}
        return out


def held(state: dict, visits: Visits, now: datetime | None) -> tuple[datetime | None, str | None,
                                                                        str | None]:
    """(until when the account is held back, the refused credentials' fingerprint, why), or
    Nones; `now` None: as last written (the refused account's next look comes from its row)."""
    refused = state.get("refused")
    if refused:
        until = parse_time(refused.get("until"))
        if until is not None:
            return until, None, f"paused until {iso(until)}: its requests kept failing"
        look = (now + visits.max_staleness) if now is not None else parse_time(
            refused.get("looked_at"))
        return look, refused.get("fingerprint"), "refused: waits for its credentials to change"
    retry = parse_time(state.get("retry_at"))
    if retry is not None:
        return retry, None, f"failed {state.get('failures', 1)} times: tried again from {iso(retry)}"
    return None, None, None


def backoff(failures: int) -> timedelta:
    """The wait after the `failures`-th failed read in a row (before the pause)."""
    return FAILING_BACKOFF[min(failures, len(FAILING_BACKOFF)) - 1]



