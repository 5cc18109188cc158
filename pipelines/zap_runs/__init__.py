"""dlt source for Zapier zap runs (Partner API GET /v2/zap-runs): runs merged on id, steps nested."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dlt

from . import settings
from .client import ZapierClient
from .errors import ConfigError
from .incremental import read_runs
from .oauth import DEFAULT_STORE, DEFAULT_TOKEN_URL, token_source
from .rows import RUN_COLUMNS, STEP_COLUMNS, parse_time
from .spend import Spend

log = logging.getLogger(__name__)


@dataclass
class SyncProgress:
    """What one sync read, filled in by the resource for the summary."""

    window_from: datetime | None = None
    window_to: datetime | None = None
    run_ids: set[str] = field(default_factory=set)
    rechecks: int = 0
    open_runs: int = 0
    spend: Spend = field(default_factory=Spend)
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
    replay_horizon_hours: float = settings.DEFAULT_REPLAY_HORIZON_HOURS,
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
    for name, value in (("page_limit", page_limit), ("request_timeout", request_timeout),
                        ("max_retries", max_retries + 1), ("retention_days", retention_days)):
        if not value > 0:
            raise ConfigError(f"{name} must be positive (check [sources.zap_runs]).")
    # Hours of history a window reaches back: zero or more, and within a year.
    for name, value in (("lookback_hours", lookback_hours),
                        ("replay_horizon_hours", replay_horizon_hours)):
        if not 0 <= value <= 24 * 366:
            raise ConfigError(f"{name} must be between 0 and 8784 hours, not {value} (check "
                              f"{name} under [sources.zap_runs] or SOURCES__ZAP_RUNS__"
                              f"{name.upper()}).")
    if not retention_days <= 3660:
        raise ConfigError(f"retention_days must be at most 3660, not {retention_days} (check "
                          "[sources.zap_runs]).")
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
                    full_refresh, progress, gaps, timedelta(hours=replay_horizon_hours))


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
             progress: SyncProgress, gaps: tuple[timedelta, timedelta] | None = None,
             horizon: timedelta = timedelta(hours=settings.DEFAULT_REPLAY_HORIZON_HOURS)
             ) -> Iterator[object]:
    """Runs in [cursor - lookback, now), plus the watched runs (open, or failed within the
    replay horizon) that changed since the last sync (incremental.py says how it finds them).

    The cursor is kept in resource state by hand rather than with dlt.sources.incremental:
    re-reading watched runs deliberately reads rows older than the cursor, which incremental
    would filter out. State is committed with the load, so a failed sync moves nothing.
    """
    yield from read_runs(client, dlt.current.resource_state(), progress, since=since,
                         force_since=force_since, lookback=lookback, horizon=horizon,
                         page_limit=page_limit, full_refresh=full_refresh, gaps=gaps)
