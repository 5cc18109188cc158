"""Runs the sync keeps watching after it read them: open runs, and failed runs that may be replayed.

Each watched run keeps the status it was last seen in and where to look for it again. The
sync lists the runs in the contract's open statuses and in `error` with `statuses=`; a watched
run missing from the listing it belongs to has changed, and only those are re-read (rechecks.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..common import settings
from ..common.clock import iso
from .rows import RunKey, parse_time

log = logging.getLogger(__name__)


@dataclass
class Watched:
    """A run to look at again: its zap, the status it was seen in, and where to find it.

    `anchor` is the narrow window a re-check asks for; `wide` is where the run's trigger time
    lies (the API lists by trigger time), used once a narrow re-check fails: the span of its
    listing neighbours when they agreed with its start, else the window it was found in, which
    is then kept as `outer` for the case the neighbours misled. `since` is when a failed run
    failed (its end time): it is watched for replays until the replay horizon passes that.
    """

    zap_id: int
    anchor_from: datetime
    anchor_to: datetime
    wide_from: datetime
    wide_to: datetime
    misses: int = 0
    status: str = ""  # "" in state written before statuses were kept: an unlisted status
    since: datetime | None = None
    outer: tuple[datetime, datetime] | None = None

    @property
    def kind(self) -> str:
        """"error", "open" (a status `statuses=` lists) or "unlisted" (one it cannot list)."""
        if self.status == "error":
            return "error"
        return "open" if self.status in settings.OPEN_STATUSES else "unlisted"

    def dump(self) -> list:
        out = [self.zap_id, iso(self.anchor_from), iso(self.anchor_to), iso(self.wide_from),
               iso(self.wide_to), self.misses, self.status,
               iso(self.since) if self.since else None]
        return out + [iso(self.outer[0]), iso(self.outer[1])] if self.outer else out

    @classmethod
    def load(cls, raw: list) -> Watched:
        status = str(raw[6]) if len(raw) > 6 else ""
        since = parse_time(raw[7]) if len(raw) > 7 else None
        outer = (parse_time(raw[8]), parse_time(raw[9])) if len(raw) > 9 else None
        return cls(int(raw[0]), *(parse_time(v) for v in raw[1:5]), int(raw[5]), status, since,
                   outer)

    def triggered_by(self) -> datetime:
        """The latest time the run can have been triggered: its start, when it is anchored at
        it (a run starts no earlier than it is triggered), else the end of its window."""
        if self.anchor_to - self.anchor_from <= _TICK:
            # A second of slack: a start time may come truncated to the second.
            return min(self.wide_to, self.anchor_to + _SLACK)
        return self.wide_to

    def surely_triggered_by(self) -> datetime:
        """triggered_by, not trusting the neighbours: the end of the window it was found in."""
        if self.anchor_to - self.anchor_from <= _TICK or self.outer is None:
            return self.triggered_by()
        return self.outer[1]

    def is_narrow(self) -> bool:
        return (self.anchor_from, self.anchor_to) != (self.wide_from, self.wide_to)

    def missed(self) -> bool:
        """Record a re-check that did not find the run; True once it should be forgotten."""
        if self.is_narrow():
            self.anchor_from, self.anchor_to = self.wide_from, self.triggered_by()
            self.wide_to = self.anchor_to
            return False
        if self.outer is not None:
            end = self.outer[1]
            if self.anchor_to - self.anchor_from <= _TICK:  # anchored at its start
                end = min(end, self.anchor_to)
            self.anchor_from, self.anchor_to = self.outer[0], end
            self.wide_from, self.wide_to, self.outer = self.anchor_from, self.anchor_to, None
            return False
        self.misses += 1
        return self.misses >= settings.RECHECK_MISSES_BEFORE_DROP


def pack(value: object) -> str:
    """A state value as compact JSON text."""
    return json.dumps(value, separators=(",", ":"))


def unpack(value: object) -> object:
    """A state value written by `pack`, or as a structure by an older version."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            log.warning("ignoring an unreadable entry in the sync state")
            return None
    return value


def load_watched(raw: dict[str, list] | None) -> dict[str, Watched]:
    """The watched runs from resource state; unreadable entries are dropped with a warning."""
    out: dict[str, Watched] = {}
    for run_id, entry in (raw or {}).items():
        try:
            out[run_id] = Watched.load(entry)
        except (ValueError, TypeError, IndexError):
            log.warning("ignoring an unreadable watched-run entry for %s in the sync state", run_id)
    return out


def forget_old_errors(watched: dict[str, Watched], errors_since: datetime) -> None:
    """Failed runs whose replay horizon has passed are no longer watched."""
    _forget(watched, lambda v: v.kind == "error" and (v.since is None or v.since < errors_since))


def forget_purged(watched: dict[str, Watched], purged_before: datetime) -> None:
    """Runs triggered before `purged_before` are gone from Zapier (retention)."""
    _forget(watched, lambda v: v.surely_triggered_by() < purged_before)


def _forget(watched: dict[str, Watched], gone: Callable[[Watched], bool]) -> None:
    for run_id in [k for k, v in watched.items() if gone(v)]:
        del watched[run_id]


class Anchors:
    """Who to watch among the runs of one listing, and where to look for them again.

    A started run is anchored at its start time. A run not started yet has no time of its
    own, but the API lists runs by time: in an unfiltered listing its nearest neighbours bound
    it. If the listing was not ordered the narrow re-check misses, and `Watched.missed` falls
    back to the whole window once. In a `statuses=` listing neighbours are far apart: a run
    already watched keeps where it was placed, a new one is anchored at its start (or gets the
    listing's window).
    """

    NEIGHBOURS = 3  # known start times taken on each side
    REACH = 25  # how far along the listing to look for them
    CLOSE = timedelta(minutes=30)  # neighbours this far from their median count
    MARGIN = timedelta(minutes=5)

    def __init__(self, window: tuple[datetime, datetime], errors_since: datetime,
                 neighbours: bool = True) -> None:
        self.window = window
        self.errors_since = errors_since
        self.neighbours = neighbours
        self._starts: list[datetime | None] = []
        self._waiting: list[tuple[str, int, int, str, datetime | None]] = []
        self._started: list[tuple[str, int]] = []

    def add(self, run: RunKey, watched: dict[str, Watched]) -> None:
        start, status = run.start_time, run.status
        since = None
        if status == "error":
            since = run.end_time or start or self.window[1]
        known = watched.get(run.id)
        if status in settings.FINAL_STATUSES and (since is None or since < self.errors_since):
            watched.pop(run.id, None)
        elif known is not None and not self.neighbours:
            # A run's trigger time never changes: where it was placed still holds (a run that
            # started since, days after its trigger, is no easier to find at its start).
            known.status, known.since, known.misses = status, since, 0
        elif start is not None and self.window[0] <= start < self.window[1]:
            watched[run.id] = Watched(run.zap_id, start, start + _TICK, *self.window,
                                      status=status, since=since)
            if self.neighbours:
                self._started.append((run.id, len(self._starts)))
        elif self.neighbours:
            self._waiting.append((run.id, run.zap_id, len(self._starts), status, since))
        else:
            watched[run.id] = Watched(run.zap_id, *self.window, *self.window, status=status,
                                      since=since)
        self._starts.append(start)

    def resolve(self, watched: dict[str, Watched]) -> None:
        """Anchor the runs not started yet, now that their neighbours are known.

        The neighbours' start times close to their median bound the run (runs that started
        long after they were triggered, or a listing that is not by time, make outliers, which
        are left out); when too few agree on both sides, all of them bound it; without
        neighbours on both sides, the whole window is the anchor. A run
        that started far from where the listing puts it (the API lists and filters runs by when
        they were triggered, and a held run may start days later) is anchored by its neighbours
        too: a re-check at its start time would miss it and fall back to the whole window.
        """
        for run_id, zap_id, pos, status, since in self._waiting:
            anchor = self._neighbours(pos) or self.window
            watched[run_id] = Watched(zap_id, *anchor, *self.window, status=status, since=since)
        for run_id, pos in self._started:
            start, near = self._starts[pos], self._neighbours(pos)
            if near is None or run_id not in watched:
                continue
            run = watched[run_id]
            if not near[0] <= start <= near[1]:
                run.anchor_from, run.anchor_to = near
            if near != self.window:
                # It was triggered among its neighbours (whatever its start says).
                run.outer, (run.wide_from, run.wide_to) = (run.wide_from, run.wide_to), near
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
        # Both sides must agree, or the span may lie wholly on one side of the run; if they
        # do not, all of them bound it (a run listed by time lies between its neighbours).
        if len(agreeing) < 3 or not (any(abs(s - median) <= self.CLOSE for s in before)
                                     and any(abs(s - median) <= self.CLOSE for s in after)):
            agreeing = near
        return (max(self.window[0], agreeing[0] - self.MARGIN),
                min(self.window[1], agreeing[-1] + self.MARGIN))


_TICK = timedelta(milliseconds=1)
_SLACK = timedelta(seconds=1)
