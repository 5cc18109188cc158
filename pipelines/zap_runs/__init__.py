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
from .clock import iso, utcnow
from .errors import ConfigError
from .oauth import DEFAULT_STORE, DEFAULT_TOKEN_URL, token_source
from .paging import fetch_window
from .prefetch import prefetched
from .rechecks import Anchors, load_open_runs, recheck_open_runs, zap_rates
from .rows import RUN_COLUMNS, STEP_COLUMNS, RunKey, page_rows, parse_time
from .window import gap_warnings, plan_window

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

    def recheck_window() -> None:
        progress.rechecks += 1

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
    rates = zap_rates(seen_per_zap, main.window[0], to_date)
    yield from recheck_open_runs(client, open_runs, progress.run_ids, rates, page_limit, take,
                                 recheck_window)

    if newest is not None:
        state["cursor"] = iso(newest)
    state["open_runs"] = {k: v.dump() for k, v in open_runs.items()}
    state["last_window"] = [iso(from_date) if from_date else None, iso(to_date)]
    progress.open_runs = len(open_runs)
