"""When each account is next read: as often as its runs are worth it, within one rate budget.

A failed run waits, on average, half an account's read interval before it is in the warehouse.
An account that makes `w` failed runs an hour and costs `c` requests a read, read every `I`
hours, costs the budget `c / I` requests an hour and its failures `w * I / 2` hours of waiting
an hour. Spreading a budget of `B` requests an hour to make the total wait least gives each
account an interval proportional to `sqrt(c / w)` (the square-root rule of polling): a busy or
failing account is read often, a quiet one rarely, and the scale is the one at which the
intervals spend `B`. Every interval is at most `max_staleness`, so no account is forgotten
(those reads come first out of the budget), and at least `shortest` (a loop reads no account
twice between two loads).

What an account is worth comes from its own history, kept in its state: runs an hour from the
hourly counts each read keeps, failures an hour from the failed runs it watches for replays
(both weighted to the last SMOOTH_HOURS), requests a read, its open runs (each may settle as a
failure), and whether its last read found a new failure (failures come in streaks: read it
again soon); the figures go into its `schedule`. An account never read, or whose schedule an older version
did not keep, is due at once.

Within one invocation the due accounts are read most valuable first: those about to exceed
max_staleness, then by `w * age² / c`, the waiting a read now saves per request.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..common.clock import iso
from ..reading.rows import parse_time
from ..reading.watch import unpack
from ..reading.widen import recent_pace

# A run fails this often where an account's own history shows no failure yet (Zapier's mix).
FAIL_SHARE = 0.03
# An open run settles within about this many hours (then it may have failed).
OPEN_SETTLE_HOURS = 1.0
# What a first read is taken to cost at most, in requests, for the reads after it.
FIRST_COST = 1.5
# Runs and failures an hour weigh the past by exp(-age / SMOOTH_HOURS).
SMOOTH_HOURS = 6.0
# A read that found a new failure: the account's worth counts this much more until the next.
STREAK = 3.0
# Worth of an account with no runs at all (failures an hour): it is read every max_staleness.
FLOOR = 1e-4
# Accounts are read first when, read one after another by deadline, they would otherwise come
# within this share of max_staleness (schedule._urgent).
STALE_SOON = 0.1
# An account read only for max_staleness is due between (1 - JITTER) and 1 times it (a stable
# share per account), so accounts first read together (a catch-up) do not all fall due together.
JITTER = 0.25
# How much before its due time an account a loop reads every round is read (schedule.order).
ROUND_SLACK = timedelta(seconds=30)
# The share of the budget the reads max_staleness makes urgent are counted to get.
URGENT_SHARE = 0.5
# Budget left once the due accounts are read goes to accounts not due yet but at least this
# share of their interval old, most valuable first (the waiting a read saves per request): the
# busiest and failing accounts get what the plan left over, and quiet ones only when no other
# read is worth it.
EARLY = 0.5


@dataclass
class Entry:
    """An account as the scheduler sees it: when it was last read, what a read costs, and its
    worth (failed runs an hour worth finding quickly)."""

    name: str
    last_read: datetime | None
    cost: float = 1.0
    worth: float = FLOOR
    held_until: datetime | None = None  # not read before (visits.py: failing, refused)


def observe(state: dict, at: datetime, *, failed_before: set[str], requests: int,
            open_runs: int) -> None:
    """Fold one successful read into the account's `schedule` (state["schedule"]): its pace of
    runs from the hourly counts the read keeps (runs_by_hour), of failures from the failed runs
    it watches (each weighted by how recent it is), what a read costs, and whether this read
    found a failure not among `failed_before` (failed_runs before it)."""
    s = state.get("schedule") or {}
    runs = recent_pace(unpack(state.get("runs_by_hour")), at, SMOOTH_HOURS)
    failed = failed_runs(state)
    fails = sum(math.exp(-(at - when).total_seconds() / 3600 / SMOOTH_HOURS)
                for when in failed.values() if when is not None and when <= at) / SMOOTH_HOURS
    new_failures = len(failed.keys() - failed_before)
    # A first read lists the account's failed and open runs once and costs more than the reads
    # after it (reading/widen.py): it counts for no more than FIRST_COST.
    cost = 0.5 * s.get("cost", requests) + 0.5 * requests if "cost" in s else min(requests,
                                                                                  FIRST_COST)
    state["schedule"] = {"last_read": iso(at), "runs_h": round(runs or 0.0, 6),
                         "fails_h": round(fails, 6), "cost": round(max(cost, 1.0), 3),
                         "open": open_runs, "failed_last": new_failures > 0}


def failed_runs(state: dict) -> dict[str, datetime | None]:
    """The failed runs the account's state watches (for replays), with when each failed."""
    watched = unpack(state.get("watched")) or {}
    return {key: parse_time(raw[7]) if len(raw) > 7 else None for key, raw in watched.items()
            if len(raw) > 6 and raw[6] == "error"}


def worth(schedule: dict) -> tuple[float, str]:
    """(failed runs an hour worth finding quickly, why) of an account's `schedule`."""
    runs, fails = schedule.get("runs_h", 0.0), schedule.get("fails_h", 0.0)
    opened = schedule.get("open", 0) * FAIL_SHARE / OPEN_SETTLE_HOURS
    terms = {f"failing: {fails:.2g} failures/h": fails,
             f"busy: {runs:.3g} runs/h": FAIL_SHARE * runs,
             f"{schedule.get('open', 0)} open runs to settle": opened}
    why = max(terms, key=terms.__getitem__)
    value = max(fails, FAIL_SHARE * runs) + opened
    if schedule.get("failed_last"):
        value, why = value * STREAK, "a new failure at the last read"
    if value <= FLOOR:
        return FLOOR, "quiet"
    return value, why


def entry(name: str, state: dict) -> Entry:
    """The account of `state` as the scheduler sees it; one still backfilling (or never read)
    is due at once."""
    schedule = state.get("schedule") or {}
    value, _ = worth(schedule)
    last = None if state.get("backfill_until") else parse_time(schedule.get("last_read")) or \
        parse_time((state.get("last_window") or [None, None])[1])
    return Entry(name, last, float(schedule.get("cost", 1.0)), value)


@dataclass
class Plan:
    """The intervals of one invocation: `scale * sqrt(cost / worth)`, within [shortest, longest]."""

    scale: float
    shortest: timedelta
    longest: timedelta
    requests_per_hour: float | None = None  # the budget it spreads (None: no limit)

    def interval(self, e: Entry) -> timedelta:
        hours = self.scale * math.sqrt(e.cost / e.worth)
        if timedelta(hours=hours) >= self.longest:
            return max(self.shortest, self.longest * (1 - JITTER * _share(e.name)))
        return min(self.longest, max(self.shortest, timedelta(hours=hours)))

    def due_at(self, e: Entry) -> datetime | None:
        """None: due now (never read)."""
        return None if e.last_read is None else e.last_read + self.interval(e)

    def reason(self, e: Entry, why: str) -> str:
        interval = self.interval(e)
        if interval >= self.longest * (1 - JITTER):
            return f"max_staleness ({why})"
        if interval <= self.shortest:
            return f"every load ({why})"
        return why


def plan(entries: Iterable[Entry], requests_per_hour: float | None, longest: timedelta,
         shortest: timedelta = timedelta(0)) -> Plan:
    """The scale at which the entries' intervals spend `requests_per_hour` (None: no limit, every
    interval `shortest`)."""
    entries = list(entries)
    if not requests_per_hour or not entries:
        return Plan(0.0, shortest, longest)
    longest_h = longest.total_seconds() / 3600
    shortest_h = max(shortest.total_seconds() / 3600, 1e-6)
    roots = [(e.cost, math.sqrt(e.cost / e.worth)) for e in entries]

    def spend(scale: float) -> float:
        # An interval at longest is jittered: on average (1 - JITTER / 2) of it.
        return sum(cost / (longest_h * (1 - JITTER / 2) if scale * root >= longest_h
                           else max(shortest_h, scale * root)) for cost, root in roots)

    low, high = 0.0, longest_h / min(root for _, root in roots)  # at `high` all are at longest
    if spend(high) > requests_per_hour or spend(low) <= requests_per_hour:
        # Even max_staleness for all costs more than the budget (reads are then late: said by
        # status), or the budget reads every account as often as allowed.
        return Plan(high if spend(high) > requests_per_hour else low, shortest, longest,
                    requests_per_hour)
    for _ in range(50):
        middle = (low + high) / 2
        if spend(middle) > requests_per_hour:
            low = middle
        else:
            high = middle
    return Plan(high, shortest, longest, requests_per_hour)


def order(entries: list[Entry], p: Plan, now: datetime) -> tuple[list[Entry], int]:
    """(the entries to read, in order; how many of them are due): the due ones most valuable
    first (those max_staleness makes urgent, _urgent, then by the waiting a read saves per
    request, then the never read or still backfilling: visits.py keeps them a share of the
    budget), then, for the budget left, those at least EARLY of their interval old, most valuable
    first."""
    urgent = _urgent(entries, p, now)
    # A round reads its accounts a little after it starts: one read early in every round is due
    # at the next round's start, not a moment after it.
    slack = min(p.shortest / 2, ROUND_SLACK)
    due, early = [], []
    for e in entries:
        if e.held_until is not None and e.held_until > now:
            continue
        if e.name in urgent:
            due.append(((0, (e.last_read - now).total_seconds()), e))
            continue
        at = p.due_at(e)
        if at is not None and at > now + slack:
            age = now - e.last_read
            if age >= max(p.shortest, p.interval(e) * EARLY):
                early.append((_saves(e, now), e))
            continue
        if e.last_read is None:
            due.append(((3, 0.0), e))
        else:
            due.append(((2, _saves(e, now)), e))
    due.sort(key=lambda item: item[0])
    early.sort(key=lambda item: item[0])
    return [e for _, e in due] + [e for _, e in early], len(due)


def _saves(e: Entry, now: datetime) -> float:
    """Minus the waiting a read of `e` now saves per request (sorted ascending: most first)."""
    age = (now - e.last_read).total_seconds() / 3600
    return -e.worth * age * age / e.cost


def _urgent(entries: list[Entry], p: Plan, now: datetime) -> set[str]:
    """The accounts to read first so that none passes max_staleness: by deadline (last read +
    max_staleness), the first k whose reads, one after another at URGENT_SHARE of the plan's
    rate (the others read meanwhile), would not all
    end STALE_SOON of max_staleness before the k-th deadline (earliest deadline first; with no
    limit none is urgent). A catch-up that read every account at once makes thousands fall due
    together: they are taken up early enough, not when the first ones are already late."""
    if not p.requests_per_hour:
        return set()
    waiting = sorted(((e.last_read + p.longest, e) for e in entries
                      if e.last_read is not None and (e.held_until is None or e.held_until <= now)),
                     key=lambda item: item[0])
    margin, at, last = p.longest * STALE_SOON, now, -1
    for k, (deadline, e) in enumerate(waiting):
        at += timedelta(hours=e.cost / (p.requests_per_hour * URGENT_SHARE))
        if at >= deadline - margin:
            last = k
    return {e.name for _, e in waiting[:last + 1]}


def _share(name: str) -> float:
    """A stable number in [0, 1) for an account."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest()) / 2**32
