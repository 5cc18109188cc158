"""The source's configuration: the arguments of `zap_runs_source` that dlt resolves from
[sources.zap_runs] (.dlt/config.toml, the secrets from .dlt/secrets.toml) or
SOURCES__ZAP_RUNS__<NAME>, with their defaults, checked once resolved."""

from __future__ import annotations

from typing import Optional

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretValue

from .accounts.entries import DEFAULT_ACCOUNT
from .api.oauth import DEFAULT_STORE, DEFAULT_TOKEN_URL
from .common import settings
from .common.clock import utcnow
from .common.errors import ConfigError
from .reading.rows import parse_time

# History a window reaches back, in hours: within a year (a leap one).
MAX_HOURS = 24 * 366
MAX_RETENTION_DAYS = 3660


@configspec
class ZapRunsSourceConfiguration(BaseConfiguration):
    """What `zap_runs_source` reads from [sources.zap_runs]; `on_resolved` refuses a value no
    sync can use, with the key to fix. Secret types keep their values (tokens, an accounts
    table, a redact_salt) out of dlt's traces and logs."""

    access_token: Optional[TSecretValue] = None  # noqa: UP045 - dlt reads the hint at run time
    refresh_token: Optional[TSecretValue] = None  # noqa: UP045
    client_id: Optional[TSecretValue] = None  # noqa: UP045
    client_secret: Optional[TSecretValue] = None  # noqa: UP045
    base_url: str = settings.DEFAULT_BASE_URL
    token_url: str = DEFAULT_TOKEN_URL
    token_store_path: str = DEFAULT_STORE
    since: Optional[str] = None  # noqa: UP045
    lookback_hours: float = settings.DEFAULT_LOOKBACK_HOURS
    replay_horizon_hours: float = settings.DEFAULT_REPLAY_HORIZON_HOURS
    page_limit: int = settings.DEFAULT_PAGE_LIMIT
    requests_per_minute: float = settings.DEFAULT_REQUESTS_PER_MINUTE
    request_timeout: float = settings.DEFAULT_TIMEOUT
    max_retries: int = settings.DEFAULT_MAX_RETRIES
    backoff_base: float = settings.DEFAULT_BACKOFF_BASE
    gap_warning_hours: float = settings.DEFAULT_GAP_WARNING_HOURS
    retention_days: float = settings.DEFAULT_RETENTION_DAYS
    account_name: str = DEFAULT_ACCOUNT
    accounts: Optional[TSecretValue] = None  # noqa: UP045
    accounts_file: Optional[str] = None  # noqa: UP045
    data_policy: Optional[TSecretValue] = None  # noqa: UP045
    backfill_pages_per_pass: int = settings.DEFAULT_BACKFILL_PAGES_PER_PASS
    raise_on_failed_accounts: bool = True
    max_staleness_hours: float = settings.DEFAULT_MAX_STALENESS_HOURS
    read_budget_minutes: float = settings.DEFAULT_READ_BUDGET_MINUTES

    def on_resolved(self) -> None:
        for name in ("access_token", "refresh_token", "client_id", "client_secret"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):  # a number in the TOML
                setattr(self, name, str(value))
        for name in ("page_limit", "request_timeout", "retention_days", "backfill_pages_per_pass",
                     "max_staleness_hours", "read_budget_minutes"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive (check [sources.zap_runs]).")
        if self.max_retries < 0:
            raise ConfigError("max_retries must be 0 or more (check [sources.zap_runs]).")
        for name in ("lookback_hours", "replay_horizon_hours"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_HOURS:
                raise ConfigError(f"{name} must be between 0 and {MAX_HOURS} hours, not {value} "
                                  f"(check {name} under [sources.zap_runs] or "
                                  f"SOURCES__ZAP_RUNS__{name.upper()}).")
        if not self.retention_days <= MAX_RETENTION_DAYS:
            raise ConfigError(f"retention_days must be at most {MAX_RETENTION_DAYS}, not "
                              f"{self.retention_days} (check [sources.zap_runs]).")
        since_at(self.since)


def since_at(since: str | None):
    """`since` as a UTC datetime (None when not set); a ConfigError when it is no date or in the
    future."""
    try:
        at = parse_time(since) if since else None
    except ValueError:
        raise ConfigError(f"since {since!r} (--since or [sources.zap_runs] since) is not a date: "
                          "use YYYY-MM-DD or an ISO date-time such as 2026-01-31T00:00:00Z.") from None
    if at is not None and at > utcnow():
        raise ConfigError(f"since {since!r} (--since or [sources.zap_runs] since) is in the future: "
                          "give the date to read runs from, today or earlier (dates are UTC).")
    return at
