"""Test helper: scheduled passes over three accounts on simulated time (the sync's clock and the
simulator's one VirtualClock), which leave one account read in the last pass, one not due yet
and one overdue. Every read takes no simulated time (nothing is paced), so the times are exact."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dlt

from pipelines.simulator import Simulator, VirtualClock
from pipelines.zap_runs.common import clock
from pipelines.zap_runs.warehouse.pipeline import SyncResult, logged_sync

from .conftest import small_world
from .warehouse import FAST

# Every account is due SHORTEST after its read (no rate: the plan reads each as often as
# allowed); MAX_STALENESS is what the rows store, and the reach of LOOKAHEAD (a quarter of it).
SHORTEST = timedelta(hours=2)
MAX_STALENESS_HOURS = 2.4
HOUR = timedelta(hours=1)


@dataclass
class Passes:
    """What the passes left: `read` was read in the last pass, `overdue` was due then and not
    read, `waiting` is not due yet; `now` is 4 h (times the scale) after the first pass (the
    clock is there)."""

    clock: VirtualClock
    started: datetime  # the first pass
    results: list[SyncResult]
    read: str
    overdue: str
    waiting: str
    accounts_file: Path

    @property
    def now(self) -> datetime:
        return self.clock.now()


def scheduled_passes(pipeline: dlt.Pipeline, folder: Path, scale: float = 1.0) -> Passes:
    """Four logged passes into `pipeline`, the first 4 h before the real now (every span here,
    SHORTEST and MAX_STALENESS_HOURS too, times `scale`):

    - at 0 h `a` is read (the only account configured), due at 2 h;
    - at 1.5 h `b` and `c` are read (the only ones configured), due at 3.5 h;
    - at 2.2 h `a` is due and read; `b` and `c` are not due (nor within LOOKAHEAD);
    - at 3.7 h `b` and `c` are due, `a` (due at 4.2 h) is not: the pass stops after its first
      account (`stop`), so one of `b` and `c` is read and the other is overdue.

    Then the clock moves on to 4 h: `overdue` has gone unread 2.5 h, beyond MAX_STALENESS_HOURS."""
    hour = HOUR * scale
    start = datetime.now(UTC).replace(microsecond=0) - 4 * hour
    vc = VirtualClock(start)
    worlds = {name: small_world(seed=170 + i, days=1, clock=vc, runs_per_day=40)
              for i, name in enumerate("abc")}
    sim = Simulator(accounts=list(worlds.items()), clock=vc, rate_limit=None).start()
    entries = {name: {"name": name, "access_token": sim.accounts[name].token} for name in worlds}
    accounts_file = folder / "accounts.jsonl"
    accounts_file.write_text("".join(json.dumps(e) + "\n" for e in entries.values()))
    args = {**FAST, "base_url": sim.base_url, "max_staleness_hours": MAX_STALENESS_HOURS * scale,
            "min_read_interval_seconds": SHORTEST.total_seconds() * scale}

    def run(names: str, **more: object) -> SyncResult:
        return logged_sync(pipeline, accounts=[entries[n] for n in names], **args, **more)

    try:
        with clock.use(vc):
            results = [run("a")]
            vc.advance(1.5 * hour)
            results.append(run("bc"))
            vc.advance(0.7 * hour)
            results.append(run("abc"))
            vc.advance(1.5 * hour)
            asked = itertools.count()
            results.append(run("abc", stop=lambda: next(asked) >= 1))
    finally:
        sim.stop()
    vc.advance(0.3 * hour)
    [read] = [o.account for o in results[-1].accounts]
    assert [o.account for o in results[2].accounts] == ["a"], "a alone was due at 2.2 h"
    return Passes(vc, start, results, read, ({"b", "c"} - {read}).pop(), "a", accounts_file)
