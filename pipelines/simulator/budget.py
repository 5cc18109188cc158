"""The budget B of an incremental sync, from the world's own truth (not from what a sync saw).

    B = ceil(new / page) + ceil(open / page) + ceil(recent_errors / page) + changed

Per account: pass that account's world (`sim.accounts[name].world`).

new: runs triggered since the last sync; open: runs now in a status that is not final;
recent_errors: runs in `error` that failed within the replay horizon; changed: runs that
existed at the last sync, triggered before it, whose status or steps differ now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from .world import World

FINAL = frozenset({"success", "error", "error_handled", "halted", "filtered", "skipped"})


@dataclass(frozen=True)
class Snapshot:
    """What the world looked like when a sync ran: each run's status and steps."""

    at: datetime
    runs: dict[str, tuple[str, str]]


def snapshot(world: World) -> Snapshot:
    with world.lock:
        world.advance_to_clock()
        return Snapshot(world.clock.now(), {r.id: (r.status, repr(r.steps)) for r in world.runs})


@dataclass(frozen=True)
class TruthBudget:
    new: int
    open: int
    recent_errors: int
    changed: int
    page: int

    @property
    def total(self) -> int:
        pages = sum(math.ceil(n / self.page) for n in (self.new, self.open, self.recent_errors))
        return pages + self.changed


def truth_budget(world: World, before: Snapshot, page: int,
                 horizon: timedelta = timedelta(hours=72)) -> TruthBudget:
    """B for a sync that runs now, its predecessor having run at `before`."""
    with world.lock:
        world.advance_to_clock()
        now = world.clock.now()
        new = opened = errors = changed = 0
        for run in world.runs:
            if run.occurred_at > now:
                break  # generated with the rest of its hour, not triggered yet: no API shows it
            if run.occurred_at >= before.at:
                new += 1
            elif before.runs.get(run.id, (run.status, repr(run.steps))) != (run.status,
                                                                             repr(run.steps)):
                changed += 1
            if run.status not in FINAL:
                opened += 1
            elif run.status == "error" and (run.end_time or run.occurred_at) >= now - horizon:
                errors += 1
    return TruthBudget(new, opened, errors, changed, page)
