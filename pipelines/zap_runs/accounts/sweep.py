"""One pass over the accounts: each account's incremental sync, one after another, under one
rate budget, each failure kept to its own account.

- **One budget.** Every account's client shares one pacer (`requests_per_minute` is for the
  pass, so for the process that runs one; Zapier counts per IP), one connection pool and one
  request count.
- **Fresh where it matters.** A scheduled pass reads the due accounts, most valuable first,
  within its budget (schedule.py; Visits); `--all-accounts` and one account read every account,
  caught-up ones first, the most overdue (oldest last window) first, then backfills, then new
  ones. A window longer than a day is counted first (a few one-run requests), and the backfills
  of a pass share `backfill_pages_per_pass` pages (at most a quarter of a scheduled pass's
  requests): each reads the oldest part of its window that fits what is left, and once they are
  spent the next backfills wait for the next pass (deferred).
- **Isolated.** With many accounts, an account that fails is recorded (AccountOutcome, one row
  of the sync log) and the pass goes on. A refused token (401) or a missing scope (403) skips
  the account until its credentials change; an account whose requests keep failing while
  others succeed is paused for a day after three passes. Its state stays as it was, so nothing
  it has not read is skipped for good.
- **State per account** in the warehouse (state.py), one row each, loaded with the runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..api.client import Stats, ZapierClient, http_client
from ..api.oauth import OnRotate, account_store, token_source
from ..api.pacing import Pacer
from ..common import clock
from ..common.clock import iso, utcnow
from ..common.errors import ConfigError, ZapRunsError
from ..reading.backfill import Deferred, long_window, part_end
from ..reading.incremental import read_runs
from ..reading.listings import count_runs
from ..reading.rows import parse_time
from . import schedule
from . import state as account_state
from .entries import Account
from .failures import account_error, refused
from .outcomes import AccountOutcome, SyncProgress
from .state import current_pipeline, in_table, legacy_states, read_states
from .visits import BACKFILL_SHARE, Planner, Visits, backoff

log = logging.getLogger(__name__)

# An account whose requests failed in this many passes in a row (others succeeding) pauses.
FAILING_PASSES = 3
FAILING_PAUSE = timedelta(hours=24)
# Accounts whose states one query reads, as a scheduled pass goes: at first, and at most.
FIRST_CHUNK, STATE_CHUNK = 25, 200


@dataclass
class ReadOptions:
    """How each account's runs are read (the source's arguments)."""

    since: datetime | None
    force_since: bool
    lookback: timedelta
    horizon: timedelta
    page_limit: int
    full_refresh: bool
    gaps: tuple[timedelta, timedelta] | None
    backfill_pages: int | None = None  # None: read every window whole


@dataclass
class Connection:
    """How to reach the API for an account (the source's arguments)."""

    base_url: str
    token_url: str
    token_store_path: str
    timeout: float
    max_retries: int
    backoff_base: float
    requests_per_minute: float | None
    on_rotate: OnRotate | None = None


def overdue_order(accounts: list[Account], states: dict[str, dict]) -> list[Account]:
    """Caught-up accounts first, the longest unsynced first; then backfills; then new ones."""
    def key(account: Account) -> tuple[int, str]:
        state = states.get(account.name) or {}
        last = (state.get("last_window") or [None, None])[1] or ""
        if not state.get("cursor"):
            return 2, ""
        return (1 if state.get("backfill_until") else 0), last
    return sorted(accounts, key=key)


class Sweep:
    """Reads every account in turn into one stream of rows (one dlt resource, one load)."""

    def __init__(self, accounts: list[Account], problems: list[tuple[str, str]],
                 policies: dict[str, object], connection: Connection, options: ReadOptions,
                 progress: SyncProgress, *, isolate: bool, default: str,
                 raise_on_failed: bool = False, visits: Visits | None = None,
                 pacer: Pacer | None = None) -> None:
        self.accounts = accounts
        self.policies = policies
        self.connection = connection
        self.options = options
        self.progress = progress
        self.isolate = isolate
        self.default = default
        self.pacer = pacer if pacer is not None else Pacer(None)  # given: a loop's, across rounds
        self.pacer.set_rate(connection.requests_per_minute)
        self.stats = Stats()
        self.http = http_client(connection.timeout)
        now = utcnow()
        self.outcomes = progress.outcomes
        progress.default_account, progress.many = default, isolate
        progress.configured = len(accounts)
        # A bad entry of the configuration is no account: reported as the entry, once.
        self.outcomes.extend(AccountOutcome(name, "invalid", now, now, message)
                             for name, message in problems)
        self._failing: dict[str, str] = {}  # account -> why, this pass
        self.raise_on_failed = raise_on_failed  # a plain dlt run raises after its load
        # Pages the backfills of this pass may still read (backfill_pages_per_pass).
        self.backfill_left = options.backfill_pages or 0
        self.visits = visits if visits is not None else Visits()
        self.planner = Planner(self.visits, {a.name: a for a in accounts})
        v, rate = self.visits, connection.requests_per_minute
        if v.scheduled and v.budget_minutes and rate:
            # Backfills take at most their share of a scheduled pass's requests.
            self.backfill_left = min(self.backfill_left,
                                     max(1, int(v.budget_minutes * rate * BACKFILL_SHARE)))

    def client_for(self, account: Account) -> ZapierClient:
        c = self.connection
        store = c.token_store_path
        if self.isolate:
            store = account_store(c.token_store_path, account.name)
            if account.name == self.default and not store.exists() \
                    and Path(c.token_store_path).exists():
                # One account became many: its rotated token is still in the single store (the
                # configured refresh token may be dead); carry it over.
                store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.replace(c.token_store_path, store)
        tokens = token_source(account.access_token, account.refresh_token, account.client_id,
                              account.client_secret, c.token_url, store, c.timeout,
                              account=account.name, on_rotate=c.on_rotate)
        try:
            return ZapierClient(c.base_url, tokens, timeout=c.timeout, max_retries=c.max_retries,
                                backoff_base=c.backoff_base, pacer=self.pacer, stats=self.stats,
                                http=self.http)
        except ValueError as exc:
            raise ConfigError(f"{exc} (check base_url under [sources.zap_runs]).") from None

    def read(self, resource_state: dict) -> Iterator[object]:
        """Rows of the sync of each account this pass reads (`visits`: the due ones, most
        valuable first, within its budget, schedule.py; or every one), then their states, as rows
        of zap_runs_account_state in the same load (state.py); what an older version kept
        in `resource_state` (dlt's) is carried over once. On the Delta lake the states stay in
        `resource_state` (account_state.in_table says why)."""
        pipeline = current_pipeline()
        if not in_table(pipeline):
            states = legacy_states(resource_state, self.default)
            resource_state["accounts"] = states
            yield from self._read_all({}, lambda names: {n: states.setdefault(n, {}) for n in names},
                                      known=states)
            return
        legacy = legacy_states(resource_state, self.default, take=False)
        stored = read_states(pipeline, legacy) if pipeline is not None and legacy else {}
        if all(name in stored for name in legacy):
            # Every account of the old layout has a row of a completed load: the old state goes
            # (kept till then: a first package that is aborted, not just crashed, loses nothing).
            legacy_states(resource_state, self.default)
            legacy = {}

        def load(wanted: list[str]) -> dict[str, dict]:
            found = read_states(pipeline, wanted) if pipeline is not None else {}
            return {name: found.get(name) or legacy.get(name) or {} for name in wanted}

        rows = (account_state.read_schedules(pipeline)
                if pipeline is not None and self.visits.scheduled else {})
        states: dict[str, dict] = {}
        yield from self._read_all(states, load, rows=rows)
        # Every account of the old pipeline state gets its row, read in this pass or not.
        carried = {name: value for name, value in legacy.items()
                   if name not in states and name not in stored}
        yield account_state.rows({**carried, **states},
                                 pipeline.pipeline_name if pipeline is not None else None,
                                 self._columns({**carried, **states}))

    def _read_all(self, states: dict[str, dict], load: Callable[[list[str]], dict[str, dict]],
                  known: dict[str, dict] | None = None,
                  rows: dict[str, dict] | None = None) -> Iterator[list[dict]]:
        """Read the accounts of this pass (visits.py): `load(names)` gives their stored states;
        `states` collects those of the accounts read (the rows this pass writes). `known`: every
        state, when all are in memory (the Delta lake's pipeline state); `rows`: every account's
        schedule columns."""
        planner = self.planner
        try:
            if not self.visits.scheduled:
                states.update(load(list(planner.accounts)))
                known = states
            chosen = planner.choose(planner.entries(rows, known))
            if not self.visits.scheduled:
                chosen = [a.name for a in overdue_order(self.accounts, states)]
            self.progress.due = planner.due
            started = clock.monotonic()
            new_left = sum(1 for name in chosen if name in planner.new)
            for batch in _growing(chosen):
                stored = load(batch) if self.visits.scheduled else states
                for name in batch:
                    new_left -= name in planner.new
                    if planner.spent(started, self.stats.requests,
                                     self.connection.requests_per_minute, name, new_left > 0):
                        if name in planner.new or not new_left:
                            return
                        continue  # the new accounts' share is theirs
                    state = states.setdefault(name, stored.get(name, {}))
                    yield from self._read_account(planner.accounts[name], state)
        finally:
            self.http.close()
            self._pause_failing(states)

    def _columns(self, states: dict[str, dict]) -> dict[str, dict]:
        """The schedule columns of the rows written (visits.py), also told on the accounts' rows
        of the sync log."""
        out = self.planner.columns(states)
        for outcome in self.outcomes:
            if outcome.result != "invalid" and outcome.account in out:
                columns = out[outcome.account]
                outcome.last_read_at, outcome.next_due_at, outcome.due_reason = (
                    columns["last_read_at"], columns["next_due_at"], columns["due_reason"])
        return out

    def _read_account(self, account: Account, state: dict) -> Iterator[list[dict]]:
        outcome = AccountOutcome(account.name, "failed", utcnow())
        self.outcomes.append(outcome)
        if self._refused(account, state, outcome):
            return
        progress = SyncProgress()
        outcome.progress = self.progress.current = progress
        stats, before = self.stats, (self.stats.requests, self.stats.retries, self.stats.rate_limited)
        client = None
        try:
            client = self.client_for(account)
            if self.progress.client is None:
                self.progress.client = client  # the display reads the shared counters through it
            until, backfilling = self._part_to_read(client, state, progress)
            pages_before = stats.requests
            failed_before = set(schedule.failed_runs(state))
            o = self.options
            yield from read_runs(client, state, progress, since=o.since, force_since=o.force_since,
                                 lookback=o.lookback, horizon=o.horizon, page_limit=o.page_limit,
                                 full_refresh=o.full_refresh, gaps=o.gaps, account_id=account.name,
                                 policy=self.policies.get(account.name), until=until)
        except Deferred:
            outcome.result = "deferred"
            outcome.error = ("waits for the next pass: this pass's backfills spent "
                             "backfill_pages_per_pass")
        except Exception as exc:  # noqa: BLE001 - with many accounts, one failing fails alone
            if not self.isolate:
                raise
            self._failed(account, state, outcome, exc)
        else:
            outcome.result = "success"
            if backfilling:
                self.backfill_left -= stats.requests - pages_before
            # What this read shows of the account's worth (schedule.py); a part of a backfill
            # sees history, not the present.
            if until is None:
                schedule.observe(state, progress.window_to or utcnow(),
                                 failed_before=failed_before,
                                 requests=stats.requests - before[0], open_runs=progress.open_runs)
            for key in ("refused", "failures", "retry_at"):
                state.pop(key, None)
            if until is not None:  # read up to there; the rest in the next passes
                state["backfill_until"] = iso(until)
            else:
                state.pop("backfill_until", None)
        finally:
            if client is not None:
                client.tokens.close()  # its token endpoint's connections; the pool is shared
            outcome.ended_at = utcnow()
            outcome.requests = stats.requests - before[0]
            outcome.retries = stats.retries - before[1]
            outcome.rate_limited = stats.rate_limited - before[2]
            outcome.fetched = len(progress.run_ids)
            self._fold(progress, account.name, loaded=outcome.result == "success")

    def _refused(self, account: Account, state: dict, outcome: AccountOutcome) -> bool:
        """Whether the account is skipped: its credentials were refused and have not changed
        (or its requests kept failing, less than a day ago)."""
        refused = state.get("refused")
        if not refused:
            return False
        if refused.get("fingerprint") != account.fingerprint():
            return False  # new credentials: try again
        until = parse_time(refused.get("until"))
        if until is not None and utcnow() >= until:
            return False
        outcome.result = "skipped"
        outcome.error = (f"{refused.get('error')} (since {refused.get('at')}); skipped until "
                         + ("its credentials change" if until is None else
                            f"{refused.get('until')} or its credentials change"))
        outcome.ended_at = utcnow()
        return True

    def _failed(self, account: Account, state: dict, outcome: AccountOutcome,
                exc: Exception) -> None:
        outcome.error = account_error(account, exc)
        log.warning("account %s failed: %s", account.name, outcome.error)
        if not isinstance(exc, ZapRunsError):
            log.debug("account %s: the unexpected failure", account.name, exc_info=exc)
        if refused(exc):
            state["refused"] = {"fingerprint": account.fingerprint(), "at": iso(utcnow()),
                                "error": outcome.error[:200]}
        else:
            self._failing[account.name] = outcome.error

    def _pause_failing(self, states: dict[str, dict]) -> None:
        """Count the passes an account failed in while others succeeded (an outage of the API
        fails them all and counts for none): it is tried again after a wait that grows
        (visits.FAILING_BACKOFF: a loop does not spend its rounds on it), and paused for a day
        after FAILING_PASSES."""
        if not any(o.result == "success" for o in self.outcomes):
            return
        accounts = {a.name: a for a in self.accounts}
        for name, error in self._failing.items():
            state = states[name]
            state["failures"] = state.get("failures", 0) + 1
            state["retry_at"] = iso(utcnow() + backoff(state["failures"]))
            if state["failures"] >= FAILING_PASSES:
                state.pop("retry_at")
                state["refused"] = {"fingerprint": accounts[name].fingerprint(),
                                    "at": iso(utcnow()), "until": iso(utcnow() + FAILING_PAUSE),
                                    "error": f"requests failed in {state['failures']} passes in a "
                                             f"row: {error[:150]}"}

    def _part_to_read(self, client: ZapierClient, state: dict,
                      progress: SyncProgress) -> tuple[datetime | None, bool]:
        """(where this pass's main window ends for the account: None for now, or earlier when
        its window would take more pages than the pass's backfills have left; whether it is a
        backfill, whose pages count against those) (reading/backfill.py)."""
        o = self.options
        if o.backfill_pages is None:
            return None, False
        now = utcnow()
        from_date = long_window(state, o, now)
        if from_date is None:
            return None, False
        # A backfill, or an account back after days: backfills share the pass's pages; once
        # they are spent, the next ones wait for the next pass.
        if self.backfill_left <= 0:
            raise Deferred

        def count(until: datetime) -> int | None:
            with progress.spend.on("new", self.stats):
                return count_runs(client, (from_date, until))

        return part_end(count, from_date, now, self.backfill_left * o.page_limit), True

    def _fold(self, account: SyncProgress, name: str, loaded: bool = True) -> None:
        """An account's progress into the pass's totals (its window only when `loaded`: a failed
        account's window is read again); its run ids are let go (memory stays flat however many
        accounts a pass reads)."""
        total = self.progress
        total.done += len(account.run_ids)
        account.run_ids = set()
        total.current = None
        total.rechecks += account.rechecks
        total.open_runs += account.open_runs
        label = f"account {name}: " if self.isolate else ""
        total.warnings.extend(f"{label}{warning}" for warning in account.warnings)
        if loaded and account.window_to is not None:
            if total.window_to is None or account.window_to > total.window_to:
                total.window_to = account.window_to
            if account.window_from is not None and (
                    total.window_from is None or account.window_from < total.window_from):
                total.window_from = account.window_from
        if self.isolate:
            total.spend.add(account.spend)
        else:
            total.spend = account.spend


def _growing(names: list[str]) -> Iterator[list[str]]:
    """`names` in chunks of FIRST_CHUNK, then twice as many each time up to STATE_CHUNK: states
    are read a chunk at a time, so a pass whose budget ends after a few accounts reads few."""
    start, size = 0, FIRST_CHUNK
    while start < len(names):
        yield names[start:start + size]
        start, size = start + size, min(size * 2, STATE_CHUNK)
