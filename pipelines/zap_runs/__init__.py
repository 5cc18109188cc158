"""dlt source for Zapier zap runs (Partner API GET /v2/zap-runs): runs merged on id, steps nested."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dlt

from . import settings
from .apirun import ApiRun
from .client import ZapierClient
from .errors import ConfigError
from .oauth import DEFAULT_STORE, DEFAULT_TOKEN_URL, RefreshingToken, StaticToken
from .paging import fetch_window
from .prefetch import prefetched
from .rows import RUN_COLUMNS, STEP_COLUMNS, RunKey, page_rows, parse_time
from .window import (
    Anchors,
    gap_warnings,
    iso,
    load_open_runs,
    plan_rechecks,
    plan_window,
    utcnow,
)

log = logging.getLogger(__name__)


@dataclass
class SyncProgress:
    """What one sync read, filled in by the resource for the summary."""

    window_from: datetime | None = None
    window_to: datetime | None = None
    run_ids: set[str] = field(default_factory=set)
    rechecks: int = 0
    open_runs: int = 0
    warnings: list[str] = field(default_factory=list)
    client: ZapierClient | None = None


@dlt.source(name="zap_runs", section="zap_runs", max_table_nesting=1)
def zap_runs_source(
    access_token: str | None = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    refresh_token: str | None = dlt.secrets.value,
    client_id: str | None = dlt.secrets.value,
    client_secret: str | None = dlt.secrets.value,
    token_url: str = DEFAULT_TOKEN_URL,
    token_store_path: str = DEFAULT_STORE,
    since: str | None = None,
    lookback_hours: float = settings.DEFAULT_LOOKBACK_HOURS,
    page_limit: int = settings.DEFAULT_PAGE_LIMIT,
    requests_per_minute: float = settings.DEFAULT_REQUESTS_PER_MINUTE,
    request_timeout: float = settings.DEFAULT_TIMEOUT,
    max_retries: int = settings.DEFAULT_MAX_RETRIES,
    backoff_base: float = settings.DEFAULT_BACKOFF_BASE,
    gap_warning_hours: float = settings.DEFAULT_GAP_WARNING_HOURS,
    retention_days: float = settings.DEFAULT_RETENTION_DAYS,
    force_since: bool = False,
    full_refresh: bool = False,
    progress: SyncProgress | None = None,
):
    """Zap runs of the account behind `access_token`, or behind `refresh_token` (OAuth).

    Every argument comes from `[sources.zap_runs]` in .dlt/config.toml (the secrets from
    .dlt/secrets.toml) or from SOURCES__ZAP_RUNS__<NAME> environment variables.
    """
    tokens = token_source(access_token, refresh_token, client_id, client_secret, token_url,
                          token_store_path, request_timeout)
    for name, value in (("page_limit", page_limit), ("lookback_hours", lookback_hours + 1),
                        ("request_timeout", request_timeout), ("max_retries", max_retries + 1)):
        if value <= 0:
            raise ConfigError(f"{name} must be positive (check [sources.zap_runs]).")
    try:
        since_at = parse_time(since) if since else None
    except ValueError:
        raise ConfigError(f"since {since!r} (--since or [sources.zap_runs] since) is not a date: "
                          "use YYYY-MM-DD or an ISO date-time such as 2026-01-31T00:00:00Z.") from None
    try:
        client = ZapierClient(base_url, tokens, timeout=request_timeout,
                              max_retries=max_retries,
                              requests_per_minute=requests_per_minute or None,
                              backoff_base=backoff_base)
    except ValueError as exc:
        raise ConfigError(f"{exc} (check base_url under [sources.zap_runs]).") from None
    progress = progress if progress is not None else SyncProgress()
    progress.client = client
    gaps = (timedelta(hours=gap_warning_hours), timedelta(days=retention_days))
    return zap_runs(client, since_at, force_since, timedelta(hours=lookback_hours), page_limit,
                    full_refresh, progress, gaps)


def token_source(access_token: str | None, refresh_token: str | None, client_id: str | None,
                 client_secret: str | None, token_url: str, store: str, timeout: float
                 ) -> StaticToken | RefreshingToken:
    """OAuth refresh when a refresh_token is configured, else the plain access_token."""
    if refresh_token and refresh_token.strip():
        if not (client_id and client_secret):
            raise ConfigError("refresh_token needs client_id and client_secret too: set all three "
                              "under [sources.zap_runs] in .dlt/secrets.toml.")
        return RefreshingToken(refresh_token.strip(), client_id.strip(), client_secret.strip(),
                               token_url, store, access_token or None, timeout)
    if not access_token or not access_token.strip():
        raise ConfigError("missing configuration: access_token. Set it under [sources.zap_runs] in "
                          ".dlt/secrets.toml or as SOURCES__ZAP_RUNS__ACCESS_TOKEN (or configure "
                          "refresh_token, client_id and client_secret for OAuth refresh).")
    return StaticToken(access_token.strip())


# Runs are merged on id with delete-insert: a changed run's row is replaced, and with it every
# row of its nested steps table (also when its list shrank, emptied or became null). dlt merges
# a root table and its nested tables in one transaction, so a reader never sees a run with
# another version's steps. A sync hands each run over once (`take` drops repeats), so the
# merge skips dlt's dedup: its window over every staged row is what costs memory in DuckDB.
MERGE = {"disposition": "merge", "strategy": "delete-insert", "deduplicated": True}


@dlt.resource(name="zap_runs", primary_key="id", write_disposition=MERGE,
              columns=RUN_COLUMNS, nested_hints={"steps": {"columns": STEP_COLUMNS}})
def zap_runs(client: ZapierClient, since: datetime | None, force_since: bool,
             lookback: timedelta, page_limit: int, full_refresh: bool,
             progress: SyncProgress, gaps: tuple[timedelta, timedelta] | None = None
             ) -> Iterator[object]:
    """Runs in [cursor - lookback, now) plus re-checks of runs still open from earlier syncs.

    The cursor is kept in resource state by hand rather than with dlt.sources.incremental:
    re-checking open runs deliberately re-reads rows older than the cursor, which incremental
    would filter out. State is committed with the load, so a failed sync moves nothing.
    """
    state = dlt.current.resource_state()
    to_date = utcnow()
    cursor = None if full_refresh else parse_time(state.get("cursor"))
    open_runs = {} if full_refresh else load_open_runs(state.get("open_runs", {}))
    from_date = plan_window(cursor, since, force_since, lookback, to_date)
    progress.window_from, progress.window_to = from_date, to_date
    if gaps is not None and not full_refresh:
        progress.warnings.extend(gap_warnings(state, from_date, to_date, *gaps))
        for warning in progress.warnings:
            log.warning("%s", warning)
    default_from = to_date - timedelta(days=30)
    newest = cursor

    def take(runs: list[ApiRun], request: str, anchors: Anchors) -> tuple[list[dict], list[RunKey]]:
        """Rows of the runs not handed over yet in this sync (a re-check may meet a run again)."""
        rows, keys = page_rows([run for run in runs if run.id not in progress.run_ids],
                               datetime.now(UTC), request)
        for key in keys:
            progress.run_ids.add(key.id)
            anchors.add(key, open_runs)
        return rows, keys

    filters = {"to_date": iso(to_date)}
    if from_date is not None:
        filters["from_date"] = iso(from_date)
    main = Anchors((from_date or default_from, to_date))
    seen_per_zap: dict[int, int] = {}
    for runs, request in prefetched(fetch_window(client, filters, page_limit)):
        rows, keys = take(runs, request, main)
        yield rows
        for key in keys:
            seen_per_zap[key.zap_id] = seen_per_zap.get(key.zap_id, 0) + 1
        starts = [key.start_time for key in keys if key.start_time is not None]
        if starts and (newest is None or max(starts) > newest):
            newest = max(starts)
    main.resolve(open_runs)

    span = max(1.0, (to_date - main.window[0]).total_seconds())
    rates = {zap_id: n / span for zap_id, n in seen_per_zap.items() if n >= 10}
    # Re-check open runs outside the window; runs a narrow re-check missed get their whole
    # window in a second round, in this same sync.
    # Whatever the main window did not return is re-checked, wherever its anchor points: the
    # anchor of a run not started yet is a guess from its neighbours and may lie inside it.
    plans = plan_rechecks({k: v for k, v in open_runs.items() if k not in progress.run_ids},
                          rates, page_limit)
    for round_ in (1, 2):
        missed: dict[str, object] = {}
        for plan in plans:
            progress.rechecks += 1
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

    if newest is not None:
        state["cursor"] = iso(newest)
    state["open_runs"] = {k: v.dump() for k, v in open_runs.items()}
    state["last_window"] = [iso(from_date) if from_date else None, iso(to_date)]
    progress.open_runs = len(open_runs)
