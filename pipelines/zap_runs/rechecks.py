"""Open runs: where each one is anchored, how re-checks are planned, and the re-check requests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import settings
from .apirun import ApiRun
from .client import ZapierClient
from .clock import iso
from .paging import fetch_window
from .rows import RunKey, parse_time

log = logging.getLogger(__name__)


@dataclass
class OpenRun:
    """A run seen unsettled (not in a final status, or not started): where to look for it again.

    `anchor` is the narrow window a re-check asks for; `wide` is the whole window the run was
    seen in, used once a narrow re-check fails to find it.
    """

    zap_id: int
    anchor_from: datetime
    anchor_to: datetime
    wide_from: datetime
    wide_to: datetime
    misses: int = 0

    def dump(self) -> list:
        return [self.zap_id, iso(self.anchor_from), iso(self.anchor_to), iso(self.wide_from),
                iso(self.wide_to), self.misses]

    @classmethod
    def load(cls, raw: list) -> OpenRun:
        return cls(int(raw[0]), *(parse_time(v) for v in raw[1:5]), int(raw[5]))

    def is_narrow(self) -> bool:
        return (self.anchor_from, self.anchor_to) != (self.wide_from, self.wide_to)

    def missed(self) -> bool:
        """Record a re-check that did not find the run; True once it should be forgotten."""
        if self.is_narrow():
            self.anchor_from, self.anchor_to = self.wide_from, self.wide_to
            return False
        self.misses += 1
        return self.misses >= settings.RECHECK_MISSES_BEFORE_DROP


def load_open_runs(raw: dict[str, list]) -> dict[str, OpenRun]:
    """The open-run list from resource state; unreadable entries are dropped with a warning."""
    out: dict[str, OpenRun] = {}
    for run_id, entry in raw.items():
        try:
            out[run_id] = OpenRun.load(entry)
        except (ValueError, TypeError, IndexError):
            log.warning("ignoring an unreadable open-run entry for %s in the sync state", run_id)
    return out


class Anchors:
    """Where to re-check the runs of one window that are open.

    A started run is re-checked at its start time. A run not started yet has no time of its
    own, but the API lists runs by time: its nearest neighbours in the window's listing bound
    it. If the listing was not ordered the narrow re-check misses, and `OpenRun.missed` falls
    back to the whole window once.
    """

    NEIGHBOURS = 3  # known start times taken on each side
    REACH = 25  # how far along the listing to look for them
    CLOSE = timedelta(minutes=30)  # neighbours this far from their median count
    MARGIN = timedelta(minutes=5)

    def __init__(self, window: tuple[datetime, datetime]) -> None:
        self.window = window
        self._starts: list[datetime | None] = []
        self._waiting: list[tuple[str, int, int]] = []
        self._started: list[tuple[str, int]] = []

    def add(self, run: RunKey, open_runs: dict[str, OpenRun]) -> None:
        start = run.start_time
        if start is None:
            self._waiting.append((run.id, run.zap_id, len(self._starts)))
        elif run.status not in settings.FINAL_STATUSES:
            open_runs[run.id] = OpenRun(run.zap_id, start, start + _TICK, *self.window)
            self._started.append((run.id, len(self._starts)))
        else:
            open_runs.pop(run.id, None)
        self._starts.append(start)

    def resolve(self, open_runs: dict[str, OpenRun]) -> None:
        """Anchor the runs not started yet, now that their neighbours are known.

        The neighbours' start times close to their median bound the run (runs that started
        long after they were triggered, or a listing that is not by time, make outliers, which
        are left out); too few agreeing neighbours, and the whole window is the anchor. A run
        that started far from where the listing puts it (the API lists and filters runs by when
        they were triggered, and a held run may start days later) is anchored by its neighbours
        too: a re-check at its start time would miss it and fall back to the whole window.
        """
        for run_id, zap_id, pos in self._waiting:
            anchor = self._neighbours(pos) or self.window
            open_runs[run_id] = OpenRun(zap_id, *anchor, *self.window)
        for run_id, pos in self._started:
            start, near = self._starts[pos], self._neighbours(pos)
            if near is not None and run_id in open_runs and not (
                    near[0] <= start <= near[1]):
                open_runs[run_id].anchor_from, open_runs[run_id].anchor_to = near
        self._waiting.clear()
        self._started.clear()

    def _neighbours(self, pos: int) -> tuple[datetime, datetime] | None:
        """The span of the agreeing start times around listing position `pos`, or None."""
        starts = self._starts
        before = [s for s in starts[max(0, pos - self.REACH):pos] if s][-self.NEIGHBOURS:]
        after = [s for s in starts[pos + 1:pos + 1 + self.REACH] if s][:self.NEIGHBOURS]
        near = sorted(before + after)
        if not (before and after and len(near) >= 3):
            return None
        median = near[len(near) // 2]
        agreeing = [s for s in near if abs(s - median) <= self.CLOSE]
        if len(agreeing) < 3:
            return None
        return (max(self.window[0], agreeing[0] - self.MARGIN),
                min(self.window[1], agreeing[-1] + self.MARGIN))


_TICK = timedelta(milliseconds=1)


@dataclass
class Recheck:
    """One request window that re-reads open runs of one zap."""

    zap_id: int
    from_date: datetime
    to_date: datetime
    run_ids: list[str] = field(default_factory=list)


def zap_rates(seen_per_zap: dict[int, int], since: datetime, until: datetime) -> dict[int, float]:
    """Runs per second of each zap the main window saw often enough (10 runs) to know it."""
    span = max(1.0, (until - since).total_seconds())
    return {zap_id: n / span for zap_id, n in seen_per_zap.items() if n >= 10}


def plan_rechecks(open_runs: dict[str, OpenRun], runs_per_second: dict[int, float],
                  page_limit: int) -> list[Recheck]:
    """Group the open runs to re-check into few requests.

    Per zap, open runs merge into one window while the zap's observed run rate says the window
    still fits in about half a page, so the cost stays at most one request per open run and
    usually far less. Close neighbours always merge.
    """
    by_zap: dict[int, list[tuple[str, OpenRun]]] = {}
    for run_id, run in open_runs.items():
        by_zap.setdefault(run.zap_id, []).append((run_id, run))
    close = timedelta(seconds=settings.RECHECK_CLUSTER_SECONDS)
    plans: list[Recheck] = []
    for zap_id, runs in sorted(by_zap.items()):
        rate = runs_per_second.get(zap_id)
        # Merge beyond close neighbours only where this sync saw enough of the zap to know its
        # rate; a guess would risk paging through its whole history.
        budget = timedelta(seconds=page_limit / 2 / rate) if rate else timedelta(0)
        runs.sort(key=lambda item: item[1].anchor_from)
        current: Recheck | None = None
        for run_id, run in runs:
            if current is not None and (
                    run.anchor_from <= current.to_date + close
                    or max(current.to_date, run.anchor_to) - current.from_date <= budget):
                current.to_date = max(current.to_date, run.anchor_to)
                current.run_ids.append(run_id)
            else:
                current = Recheck(zap_id, run.anchor_from, run.anchor_to, [run_id])
                plans.append(current)
    return plans


# Rows of the runs of a page not handed over yet in this sync, their open runs anchored.
Take = Callable[[list[ApiRun], str, Anchors], tuple[list[dict], list[RunKey]]]


def recheck_open_runs(client: ZapierClient, open_runs: dict[str, OpenRun], seen: set[str],
                      rates: dict[int, float], page_limit: int, take: Take,
                      on_window: Callable[[], None]) -> Iterator[list[dict]]:
    """Rows of the open runs outside this sync's window, re-read one zap's window at a time.

    Whatever the main window did not return (`seen`) is re-checked, wherever its anchor
    points: the anchor of a run not started yet is a guess from its neighbours and may lie
    inside it. Runs a narrow re-check missed get their whole window in a second round, in this
    same sync; a run missed RECHECK_MISSES_BEFORE_DROP times is forgotten. `on_window` is
    called as each re-check window starts.
    """
    plans = plan_rechecks({k: v for k, v in open_runs.items() if k not in seen}, rates, page_limit)
    for round_ in (1, 2):
        missed: dict[str, OpenRun] = {}
        for plan in plans:
            on_window()
            window = {"zap_id": str(plan.zap_id), "from_date": iso(plan.from_date),
                      "to_date": iso(plan.to_date)}
            found: set[str] = set()
            recheck = Anchors((plan.from_date, plan.to_date))
            for runs, request in fetch_window(client, window, page_limit):
                found.update(run.id for run in runs)
                yield take(runs, request, recheck)[0]
            recheck.resolve(open_runs)
            for run_id in plan.run_ids:
                if run_id in found or run_id not in open_runs:
                    continue
                widened = open_runs[run_id].is_narrow()
                if open_runs[run_id].missed():
                    log.warning("open run %s was not found in %d re-checks; it was probably "
                                "purged by Zapier and is no longer tracked", run_id,
                                settings.RECHECK_MISSES_BEFORE_DROP)
                    del open_runs[run_id]
                elif widened and round_ == 1:
                    missed[run_id] = open_runs[run_id]
        if not missed:
            break
        plans = plan_rechecks(missed, rates, page_limit)
