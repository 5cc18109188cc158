"""Re-reading watched runs one zap's window at a time: plans that group them, and the reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..api.client import ZapierClient
from ..api.paging import PageCap, fetch_window
from ..api.runs import ApiRun
from ..common import settings
from ..common.clock import iso
from .rows import RunKey
from .watch import Anchors, Watched

log = logging.getLogger(__name__)


@dataclass
class Recheck:
    """One request window that re-reads watched runs of one zap."""

    zap_id: int
    from_date: datetime
    to_date: datetime
    run_ids: list[str] = field(default_factory=list)


def zap_rates(seen_per_zap: dict[int, int], since: datetime, until: datetime) -> dict[int, float]:
    """Runs per second of each zap the main window saw often enough (10 runs) to know it."""
    span = max(1.0, (until - since).total_seconds())
    return {zap_id: n / span for zap_id, n in seen_per_zap.items() if n >= 10}


def plan_rechecks(runs: dict[str, Watched], runs_per_second: dict[int, float],
                  page_limit: int) -> list[Recheck]:
    """Group the runs to re-check into few requests.

    Per zap, runs merge into one window while the zap's observed rate (of the runs the request
    will list) says the window still fits in about half a page, so the cost stays at most one
    request per run and usually far less. Where the rate is unknown, close neighbours merge
    (a window that turns out fuller is cut short by `reread`).
    """
    by_zap: dict[int, list[tuple[str, Watched]]] = {}
    for run_id, run in runs.items():
        by_zap.setdefault(run.zap_id, []).append((run_id, run))
    close = timedelta(seconds=settings.RECHECK_CLUSTER_SECONDS)
    plans: list[Recheck] = []
    for zap_id, zap_runs in sorted(by_zap.items()):
        rate = runs_per_second.get(zap_id)
        # Merge beyond close neighbours only where this sync saw enough of the zap to know its
        # rate; a guess would risk paging through its whole history.
        budget = timedelta(seconds=page_limit / 2 / rate) if rate else timedelta(0)
        zap_runs.sort(key=lambda item: item[1].anchor_from)
        current: Recheck | None = None
        for run_id, run in zap_runs:
            fits = max(current.to_date, run.anchor_to) - current.from_date <= budget \
                if current is not None and rate else \
                current is not None and run.anchor_from <= current.to_date + close
            if fits:
                current.to_date = max(current.to_date, run.anchor_to)
                current.run_ids.append(run_id)
            else:
                current = Recheck(zap_id, run.anchor_from, run.anchor_to, [run_id])
                plans.append(current)
    return plans


# Rows of the runs of a page not handed over yet in this sync, their watch entries updated.
Take = Callable[[list[ApiRun], str, Anchors], tuple[list[dict], list[RunKey]]]
# Rows a re-read yields; what it returns when it is done.
Reread = Generator[list[dict], None, set[str]]


def reread(client: ZapierClient, plans: list[Recheck], watched: dict[str, Watched],
           page_limit: int, take: Take, on_window: Callable[[], None],
           errors_since: datetime, statuses: str | None = None) -> Reread:
    """Rows of each plan's window (of one zap, `statuses=` if given); returns the planned runs
    the windows did not list. `on_window` is called as each window starts."""
    missing: set[str] = set()
    todo = list(plans)
    while todo:
        plan = todo.pop(0)
        on_window()
        window = {"zap_id": str(plan.zap_id), "from_date": iso(plan.from_date),
                  "to_date": iso(plan.to_date)}
        if statuses:
            window["statuses"] = statuses
        found: set[str] = set()
        anchors = Anchors((plan.from_date, plan.to_date), errors_since, neighbours=not statuses)
        # A window shared by several runs must not cost more pages than a request each.
        cap = PageCap(len(plan.run_ids)) if len(plan.run_ids) > 1 else None
        for runs, request in fetch_window(client, window, page_limit, cap=cap):
            found.update(run.id for run in runs)
            yield take(runs, request, anchors)[0]
        anchors.resolve(watched)
        if cap is not None and cap.cut:
            log.debug("%s holds more runs than its %d re-checks are worth: one by one instead",
                      window, len(plan.run_ids))
            todo[:0] = [Recheck(plan.zap_id, watched[k].anchor_from, watched[k].anchor_to, [k])
                        for k in plan.run_ids if k not in found and k in watched]
            continue
        missing.update(run_id for run_id in plan.run_ids if run_id not in found)
    return missing


def recheck_changed(client: ZapierClient, targets: set[str], watched: dict[str, Watched],
                    rates: dict[int, float], page_limit: int, take: Take,
                    on_window: Callable[[], None], errors_since: datetime) -> Reread:
    """Rows of the watched runs in `targets`, re-read in their zap's narrow windows.

    Runs a narrow re-check missed get a wider window in another round, in this same sync (their
    neighbours' span, then the window they were found in); a run missed in its widest window
    RECHECK_MISSES_BEFORE_DROP times is forgotten (purged upstream). Returns the targets not
    found.
    """
    todo = {run_id: watched[run_id] for run_id in targets if run_id in watched}
    lost: set[str] = set()
    while todo:
        plans = plan_rechecks(todo, rates, page_limit)
        missing = yield from reread(client, plans, watched, page_limit, take, on_window,
                                    errors_since)
        todo = {}
        for run_id in sorted(missing):
            if run_id not in watched:
                continue
            run = watched[run_id]
            where = (run.anchor_from, run.anchor_to)
            if run.missed():
                log.warning("watched run %s was not found in %d re-checks; it was probably "
                            "purged by Zapier and is no longer tracked", run_id,
                            settings.RECHECK_MISSES_BEFORE_DROP)
                del watched[run_id]
                lost.add(run_id)
            elif where != (run.anchor_from, run.anchor_to):
                todo[run_id] = run  # a wider window to try, in this same sync
            else:
                lost.add(run_id)
    return lost
