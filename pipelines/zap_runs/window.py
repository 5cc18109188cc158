"""Incremental state: the start_time cursor, the sync window and the open runs to re-check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import settings
from .rows import parse_time


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class OpenRun:
    """A run seen in an open status (or not started): where to look for it again."""

    zap_id: int
    anchor_from: datetime
    anchor_to: datetime
    misses: int = 0

    def dump(self) -> list:
        return [self.zap_id, iso(self.anchor_from), iso(self.anchor_to), self.misses]

    @classmethod
    def load(cls, raw: list) -> OpenRun:
        return cls(int(raw[0]), parse_time(raw[1]), parse_time(raw[2]), int(raw[3]))


@dataclass
class Recheck:
    """One request window that re-reads open runs of one zap."""

    zap_id: int
    from_date: datetime
    to_date: datetime
    run_ids: list[str] = field(default_factory=list)


def plan_window(cursor: datetime | None, since: datetime | None, force_since: bool,
                lookback: timedelta, to_date: datetime) -> datetime | None:
    """from_date of this sync; None lets the API apply its default (the last 30 days)."""
    if since is not None and (force_since or cursor is None):
        return since
    if cursor is not None:
        return min(cursor - lookback, to_date)
    return None


def plan_rechecks(open_runs: dict[str, OpenRun], window_from: datetime | None,
                  default_from: datetime, runs_per_second: dict[int, float],
                  page_limit: int) -> list[Recheck]:
    """Group open runs outside the main window into few requests.

    Per zap, open runs merge into one window while the zap's observed run rate says the window
    still fits in about half a page, so the cost stays at most one request per open run and
    usually far less. Close neighbours always merge.
    """
    start = window_from or default_from
    by_zap: dict[int, list[tuple[str, OpenRun]]] = {}
    for run_id, run in open_runs.items():
        if run.anchor_from < start:
            by_zap.setdefault(run.zap_id, []).append((run_id, run))
    close = timedelta(seconds=settings.RECHECK_CLUSTER_SECONDS)
    plans: list[Recheck] = []
    for zap_id, runs in sorted(by_zap.items()):
        rate = runs_per_second.get(zap_id, 0.0) or 1 / 86400
        budget = timedelta(seconds=page_limit / 2 / rate)
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
