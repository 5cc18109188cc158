"""One sync's reads, cheapest first: the new runs, then only what changed among the watched ones.

1. The main window [cursor - lookback, now): new runs, and the few Zapier recorded late.
2. The open listing (`statuses=` the contract's open statuses) over the span of the watched open
   runs outside the window: a watched run it does not list has changed.
3. The error listing (`statuses=error`) over the replay horizon outside the window: a failed
   run it no longer lists was replayed. Runs that failed recently but were triggered before the
   horizon (after a long Delay) are read through `statuses=error` windows of their zap.
4. Re-checks of exactly the runs found changed, in their zap's narrow window.
5. Runs in statuses the contract does not list cannot be listed: two one-run requests count
   them, and only when the count moved are they re-read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from ..api.client import ZapierClient
from ..api.paging import fetch_window
from ..api.prefetch import prefetched
from ..api.runs import ApiRun
from ..common import settings
from ..common.clock import iso, utcnow
from .listings import ERROR, OPEN, list_statuses, unlisted_changes
from .rechecks import plan_rechecks, recheck_changed, reread, zap_rates
from .rows import RunKey, page_rows, parse_time
from .watch import Anchors, Watched, forget_old_errors, forget_purged, load_watched, pack, unpack
from .widen import count_hours, widened
from .window import gap_warnings, plan_window

log = logging.getLogger(__name__)

# Runs this close to the retention limit are about to be purged: no longer worth a request.
PURGE_MARGIN = timedelta(hours=1)
# The longest a run stays open (a Delay holds it up to a month), and the lookback of the version
# before failed runs were watched, kept for the first sync after an upgrade.
LONGEST_OPEN = timedelta(days=32)
UPGRADE_LOOKBACK = timedelta(hours=24)
# How far before the replay horizon the error listing reaches for recent failures.
LATE_REACH = timedelta(hours=6)
# Two count requests stand in for re-reading the unlisted runs only when that takes more.
PROBE_COST = 2


def read_runs(client: ZapierClient, state: dict, progress, *, since: datetime | None,
              force_since: bool, lookback: timedelta, horizon: timedelta, page_limit: int,
              full_refresh: bool, gaps: tuple[timedelta, timedelta] | None,
              account_id: str = "default", policy=None, until: datetime | None = None
              ) -> Iterator[list[dict]]:
    """Rows of this sync's reads, phase by phase (the module's docstring); `state` (the account's
    part of the resource state) is updated at the end. `until` ends the main window before now:
    a backfill read in parts (accounts/sweep.py)."""
    reads = Reads(client, state, progress, page_limit, account_id, policy)
    reads.plan(since, force_since, lookback, horizon, full_refresh, gaps, until)
    yield from reads.main_window()
    yield from reads.open_listing()
    yield from reads.error_listing()
    yield from reads.rechecks()
    yield from reads.unlisted_runs()
    reads.save_state(until)


class Reads:
    """One sync's reads of one account: the window plan, one method per phase, what each phase
    leaves the next (the watched runs, the targets to re-check), and the state saved at the end."""

    def __init__(self, client: ZapierClient, state: dict, progress, page_limit: int,
                 account_id: str, policy) -> None:
        self.client, self.state, self.progress = client, state, progress
        self.page_limit, self.account_id, self.policy = page_limit, account_id, policy
        self.spend, self.stats = progress.spend, client.stats
        self.targets: set[str] = set()  # watched runs found changed: re-checked in phase 4
        self.changed = 0

    # The window plan.
    def plan(self, since: datetime | None, force_since: bool, lookback: timedelta,
             horizon: timedelta, full_refresh: bool, gaps: tuple[timedelta, timedelta] | None,
             until: datetime | None) -> None:
        """Where the main window starts and ends, and the watched runs and hourly counts the
        state holds; gap warnings go to the progress."""
        state, progress = self.state, self.progress
        self.to_date = to_date = utcnow() if until is None else min(utcnow(), until)
        self.cursor = cursor = None if full_refresh else parse_time(state.get("cursor"))
        raw = {} if full_refresh else unpack(state.get("watched", state.get("open_runs", {})))
        self.watched = load_watched(raw)
        # State from before failed runs were watched ("open_runs"): list the horizon's errors once.
        self.knows_errors = not full_refresh and "watched" in state
        if cursor is not None and not self.knows_errors:
            # The first sync after an upgrade: the old 24-hour lookback still covers the replays
            # the error watch has not seen yet.
            lookback = max(lookback, UPGRADE_LOOKBACK)
        self.hist = None if full_refresh else unpack(state.get("runs_by_hour"))
        if cursor is not None and self.knows_errors and until is None and not (since and force_since):
            # A quiet account: its watched runs in one page with the new ones (widen.py). Where
            # their neighbours placed them: one the wide window misses is listed as before.
            reach: dict[str, datetime] = {}
            for v in self.watched.values():
                reach[v.kind] = min(reach.get(v.kind, v.anchor_from), v.anchor_from)
            lookback = widened(self.hist, reach, cursor, lookback, to_date, self.page_limit)
        self.from_date = from_date = plan_window(cursor, since, force_since, lookback, to_date)
        self.horizon = horizon
        # The horizon counts back from the newest run the sync knows: the server's clock, not ours.
        self.errors_since = (min(to_date, cursor) - horizon if cursor
                             else datetime.min.replace(tzinfo=UTC))
        # A run can stay open up to a month (a Delay): a plan's retention_days, which may be set
        # short to warn early, never forgets a run sooner than that.
        self.retention = max(gaps[1] if gaps else timedelta(days=settings.DEFAULT_RETENTION_DAYS),
                             LONGEST_OPEN)
        progress.window_from, progress.window_to = from_date, to_date
        if gaps is not None and not full_refresh and not state.get("backfill_until"):
            progress.warnings.extend(gap_warnings(state, from_date, to_date, *gaps))
            for warning in progress.warnings:
                log.warning("%s", warning)
        self.spend.budget.page = self.page_limit

    def take(self, runs: list[ApiRun], request: str, anchors: Anchors
             ) -> tuple[list[dict], list[RunKey]]:
        """Rows of the runs not handed over yet in this sync (a re-read may meet a run again)."""
        progress = self.progress
        # Each run once, also when a page lists one twice: on DuckDB the merge does not dedup.
        fresh, ids = [], set()
        for run in runs:
            if run.id not in progress.run_ids and run.id not in ids:
                ids.add(run.id)
                fresh.append(run)
        rows, keys = page_rows(fresh, utcnow(), request, self.account_id, self.policy)
        for key in keys:
            progress.run_ids.add(key.id)
            anchors.add(key, self.watched)
        return rows, keys

    def on_window(self) -> None:
        self.progress.rechecks += 1

    def unseen(self, kind: str) -> dict[str, Watched]:
        return {k: v for k, v in self.watched.items()
                if v.kind == kind and k not in self.progress.run_ids}

    # 1. The main window.
    def main_window(self) -> Iterator[list[dict]]:
        """The new runs, and the few Zapier recorded late; then what the window tells of the
        watched runs (which it met, which are now too old to watch) and of each zap's rate."""
        cursor, to_date, from_date = self.cursor, self.to_date, self.from_date
        self.region = region = (from_date or to_date - timedelta(days=30), to_date)
        filters = {"to_date": iso(to_date)}
        if from_date is not None:
            filters["from_date"] = iso(from_date)
        main = Anchors(region, self.errors_since)
        seen_per_zap: dict[int, int] = {}
        newest, lookback_runs, new_runs = cursor, 0, 0
        starts: list[datetime | None] = []
        with self.spend.on("new", self.stats):
            for runs, request in prefetched(fetch_window(self.client, filters, self.page_limit)):
                rows, keys = self.take(runs, request, main)
                yield rows
                for key in keys:
                    seen_per_zap[key.zap_id] = seen_per_zap.get(key.zap_id, 0) + 1
                    start = key.start_time
                    starts.append(start)
                    if cursor is not None and start is not None and start <= cursor:
                        lookback_runs += 1
                    else:
                        new_runs += 1
                    if start is not None and (newest is None or start > newest):
                        newest = start
        main.resolve(self.watched)
        self.hist = count_hours(self.hist, starts, region, to_date)
        del starts
        self.newest, self.new_runs = newest, new_runs
        self.in_window = set(self.progress.run_ids)
        server_now = min(to_date, newest or to_date)
        self.errors_since = server_now - self.horizon
        forget_old_errors(self.watched, self.errors_since)
        self.purged_before = server_now - self.retention + PURGE_MARGIN
        forget_purged(self.watched, self.purged_before)
        self.spend.split_main(lookback_runs, new_runs, self.page_limit)
        self.rates = zap_rates(seen_per_zap, region[0], to_date)

    # 2. The open listing.
    def open_listing(self) -> Iterator[list[dict]]:
        """Lists the open statuses over the span of the watched open runs outside the window: a
        watched run it does not list has changed."""
        open_before = self.unseen("open")
        if not open_before:
            return
        span = (min(v.wide_from for v in open_before.values()), self.region[0])
        found: set[str] = set()
        if span[0] < span[1]:
            with self.spend.on("open", self.stats):
                found = yield from list_statuses(self.client, OPEN, span, self.watched,
                                                 self.page_limit, self.take, self.errors_since)
        self.targets |= open_before.keys() - found

    # 3. The error listing, and the recent failures triggered before the horizon.
    def error_listing(self) -> Iterator[list[dict]]:
        """Lists `statuses=error` over the replay horizon outside the window (a failed run it no
        longer lists was replayed); failures triggered before the horizon are read in their
        zap's error windows."""
        errors_since, watched = self.errors_since, self.watched
        errors_before = self.unseen("error")
        # Failures triggered a little before the horizon (an autoreplay that failed hours later)
        # are cheaper to list with the rest than to read one window each.
        reach = [v.wide_from for v in errors_before.values()
                 if errors_since - LATE_REACH <= v.wide_from < errors_since]
        listed_span = (min([errors_since, *reach]), self.region[0])
        errors_seen: dict[int, int] = {}
        listed = listed_span[0] < listed_span[1] and (bool(errors_before) or not self.knows_errors)
        if listed:
            with self.spend.on("errors", self.stats):
                found = yield from list_statuses(self.client, ERROR, listed_span, watched,
                                                 self.page_limit, self.take, errors_since,
                                                 errors_seen)
            self.targets |= {k for k, v in errors_before.items() if k not in found
                             and max(v.anchor_from, v.wide_from) >= listed_span[0]}
        late = {k: v for k, v in errors_before.items()
                if k not in self.progress.run_ids and k not in self.targets}
        if late:
            error_rates = error_rate_bounds(errors_seen, late, listed_span) if listed else {}
            with self.spend.on("late", self.stats):
                self.targets |= yield from reread(
                    self.client, plan_rechecks(late, error_rates, self.page_limit), watched,
                    self.page_limit, self.take, self.on_window, errors_since, statuses=ERROR)

    # 4. Re-checks of the runs that changed.
    def rechecks(self) -> Iterator[list[dict]]:
        """Re-reads exactly the runs the listings found changed, in their zap's narrow window."""
        watched, targets = self.watched, self.targets
        # State from before statuses were kept: read those runs once, where they are.
        targets |= {k for k, v in watched.items() if not v.status and k not in self.in_window}
        targets -= self.progress.run_ids
        was = {k: watched[k].status for k in targets if k in watched}
        with self.spend.on("rechecks", self.stats):
            yield from recheck_changed(self.client, targets, watched, self.rates, self.page_limit,
                                       self.take, self.on_window, self.errors_since)
        self.changed = sum(1 for k, status in was.items()
                           if k not in watched or watched[k].status != status)

    # 5. Runs in statuses `statuses=` cannot name.
    def unlisted_runs(self) -> Iterator[list[dict]]:
        """Two one-run requests count the watched runs no listing can name; only when the count
        moved are they re-read."""
        # Every watched unlisted run outside the window counts, also those a re-check just read.
        unlisted = {k: v for k, v in self.watched.items()
                    if v.kind == "unlisted" and k not in self.in_window}
        if not unlisted:
            return

        def worth_probing(runs: dict[str, Watched]) -> bool:
            return len(plan_rechecks(runs, self.rates, self.page_limit)) > PROBE_COST

        suspects = set(unlisted)
        # Runs before purged_before are no longer watched: the count must not see them either.
        span = (max(self.purged_before, min(v.wide_from for v in unlisted.values())),
                self.region[0])
        if worth_probing(unlisted) and span[0] < span[1]:
            with self.spend.on("unlisted", self.stats):
                suspects = unlisted_changes(self.client, unlisted, span, worth_probing)
        suspects -= self.progress.run_ids
        if suspects:
            # Counted apart from B: runs `statuses=` cannot list cost what finding them costs.
            with self.spend.on("unlisted", self.stats):
                yield from recheck_changed(self.client, suspects, self.watched, self.rates,
                                           self.page_limit, self.take, self.on_window,
                                           self.errors_since)

    # The state the next sync starts from.
    def save_state(self, until: datetime | None) -> None:
        """The cursor, the watched runs, the last window and the hourly counts into the
        account's state; the spend's budget (B) and the open runs into the progress."""
        state, watched, to_date = self.state, self.watched, self.to_date
        forget_old_errors(watched, self.errors_since)
        open_now = sum(1 for v in watched.values() if v.kind != "error")
        budget = self.spend.budget
        budget.new, budget.open, budget.changed = self.new_runs, open_now, self.changed
        budget.recent_errors = len(watched) - open_now
        if until is not None and until <= to_date:
            # A part of a long backfill (accounts/sweep.py): all of it is read, runs or none;
            # the next part starts here.
            state["cursor"] = iso(to_date)
        elif self.newest is not None:
            # Never past the window: a run triggered in it may start after to_date.
            state["cursor"] = iso(min(self.newest, to_date))
        state.pop("open_runs", None)
        # As JSON text: one string per account, which dlt's copies of the state (a pass copies
        # and serialises it several times) take as it is, where nested lists cost per entry.
        state["watched"] = pack({k: v.dump() for k, v in watched.items()})
        state["last_window"] = [iso(self.from_date) if self.from_date else None, iso(to_date)]
        state["runs_by_hour"] = pack(self.hist)
        self.progress.open_runs = open_now


def error_rate_bounds(errors_seen: dict[int, int], late: dict[str, Watched],
                      span: tuple[datetime, datetime]) -> dict[int, float]:
    """Failures per second of each zap with late failures to re-read, from the error listing:
    (n + 1) over its span, so a zap that listed none still gets a rate (a low one)."""
    seconds = max(1.0, (span[1] - span[0]).total_seconds())
    return {v.zap_id: (errors_seen.get(v.zap_id, 0) + 1) / seconds for v in late.values()}
