"""The dlt source for Zapier zap runs (Partner API GET /v2/zap-runs): runs merged on id, steps nested."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta

import dlt

from .accounts import state as account_state
from .accounts.entries import collect, parse_shard, shard_of
from .accounts.failed_accounts import raise_after_load
from .accounts.outcomes import SyncProgress
from .accounts.sweep import Connection, ReadOptions, Sweep, Visits
from .api.oauth import OnRotate
from .api.pacing import Pacer
from .common.errors import ConfigError
from .reading.rows import RUN_COLUMNS, STEP_COLUMNS
from .source_config import ZapRunsSourceConfiguration
from .source_config import since_at as parse_since

log = logging.getLogger(__name__)
# The share of requests_per_minute the schedule plans for; the rest is for backfills and retries.
PLAN_SHARE = 0.9



@dlt.source(name="zap_runs", section="zap_runs", max_table_nesting=1,
            spec=ZapRunsSourceConfiguration)
def zap_runs_source(
    access_token: str | None = dlt.secrets.value,
    base_url: str = dlt.config.value,
    refresh_token: str | None = dlt.secrets.value,
    client_id: str | None = dlt.secrets.value,
    client_secret: str | None = dlt.secrets.value,
    token_url: str = dlt.config.value,
    token_store_path: str = dlt.config.value,
    since: str | None = dlt.config.value,
    lookback_hours: float = dlt.config.value,
    replay_horizon_hours: float = dlt.config.value,
    page_limit: int = dlt.config.value,
    requests_per_minute: float = dlt.config.value,
    request_timeout: float = dlt.config.value,
    max_retries: int = dlt.config.value,
    backoff_base: float = dlt.config.value,
    gap_warning_hours: float = dlt.config.value,
    retention_days: float = dlt.config.value,
    force_since: bool = False,
    full_refresh: bool = False,
    progress: SyncProgress | None = None,
    account_name: str = dlt.config.value,
    accounts: object = dlt.secrets.value,
    accounts_file: str | None = dlt.config.value,
    data_policy: object = dlt.secrets.value,
    backfill_pages_per_pass: int = dlt.config.value,
    shard: str | None = None,
    on_token_rotated: OnRotate | None = None,
    raise_on_failed_accounts: bool = dlt.config.value,
    max_staleness_hours: float = dlt.config.value,
    read_budget_minutes: float = dlt.config.value,
    all_accounts: bool = False,
    min_read_interval_seconds: float = 0.0,
    stop: Callable[[], bool] | None = None,
    pacer: Pacer | None = None,
):
    """Zap runs of the account behind `access_token` (or `refresh_token`, OAuth), stored under
    `account_name`; or of many accounts: `[sources.zap_runs.accounts.<name>]` entries in
    secrets.toml, `accounts_file` (JSON Lines) and the `accounts` argument (a list of Account or
    dicts) when embedded, all in one pass under one rate budget (accounts/sweep.py).

    Every argument of ZapRunsSourceConfiguration (source_config.py: the defaults, and the
    checks) comes from `[sources.zap_runs]` in .dlt/config.toml (the secrets from
    .dlt/secrets.toml) or from SOURCES__ZAP_RUNS__<NAME> environment variables; the others
    (progress, shard, force_since, full_refresh, all_accounts, on_token_rotated, stop, pacer)
    are set by the command line or by an app that embeds the source.
    `on_token_rotated(account, refresh_token, access_token, expires_at)` is called after each
    refresh, once the rotated token is stored. `shard` ("i/n") keeps the accounts whose stable
    hash falls in shard i, with a 1/n share of requests_per_minute.
    With many accounts a pass reads the accounts that are due, most valuable first, for at most
    `read_budget_minutes` of requests (accounts/schedule.py): busy and failing accounts often, none less
    often than every `max_staleness_hours`; `all_accounts` (and `since` or `full_refresh`) reads
    every one. `stop()` is asked before each account (a loop's SIGTERM); `pacer` is one kept
    across syncs (a loop's: a round's first requests are spaced from the last round's).
    `progress.outcomes` says how each account fared. With many accounts, a plain dlt
    `pipeline.run` of a pass in which accounts failed raises SomeAccountsFailed once the others
    are loaded, unless `raise_on_failed_accounts` is False (accounts/failed_accounts.py).
    """
    since_at = parse_since(since)  # ZapRunsSourceConfiguration checked it
    _warn_of_unread_keys()
    accounts = _json_value(accounts, "accounts")
    data_policy = _json_value(data_policy, "data_policy")
    found, many, share = _accounts(accounts, accounts_file, account_name, access_token,
                                   refresh_token, client_id, client_secret, shard)
    policies = _policies(found, data_policy)
    progress = progress if progress is not None else SyncProgress()
    connection = Connection(base_url, token_url, token_store_path, request_timeout, max_retries,
                            backoff_base, (requests_per_minute or 0) / share or None,
                            on_token_rotated)
    gaps = (timedelta(hours=gap_warning_hours), timedelta(days=retention_days))
    options = ReadOptions(since_at, force_since, timedelta(hours=lookback_hours),
                          timedelta(hours=replay_horizon_hours), page_limit, full_refresh, gaps,
                          backfill_pages_per_pass if many else None)
    rate = connection.requests_per_minute
    visits = Visits(scheduled=many and not (all_accounts or full_refresh or force_since),
                    max_staleness=timedelta(hours=max_staleness_hours),
                    shortest=timedelta(seconds=max(0.0, min_read_interval_seconds)),
                    budget_minutes=read_budget_minutes,
                    requests_per_hour=rate * 60 * PLAN_SHARE if rate else None, stop=stop)
    reader = Sweep(found.accounts, found.problems, policies, connection, options, progress,
                   isolate=many, default=account_name,
                   raise_on_failed=raise_on_failed_accounts and many, visits=visits,
                   pacer=pacer)
    resource = zap_runs(reader)
    account_state.declare(resource)  # each account's state: a row, loaded with its runs
    return resource


# Arguments the command line sets (or an app passes), which [sources.zap_runs] does not.
SET_BY_THE_COMMAND_LINE = {"full_refresh": "--full-refresh", "force_since": "--since",
                           "all_accounts": "--all-accounts", "shard": "--shard",
                           "min_read_interval_seconds": "--loop's --load-every"}


def _warn_of_unread_keys() -> None:
    """A key of SET_BY_THE_COMMAND_LINE under [sources.zap_runs] (an older version read it) is
    not read: said once a sync, not ignored without a word."""
    for name, option in SET_BY_THE_COMMAND_LINE.items():
        if dlt.config.get(f"sources.zap_runs.{name}") is not None:
            log.warning("%s under [sources.zap_runs] (or SOURCES__ZAP_RUNS__%s) is not read: use %s, "
                        "or pass %s= to zap_runs_source; remove the key.", name, name.upper(),
                        option, name)


def _accounts(accounts: object, accounts_file: str | None, account_name: str,
              access_token: str | None, refresh_token: str | None, client_id: str | None,
              client_secret: str | None, shard: str | None):
    """The accounts this source reads (and the problems of the bad entries), whether they are
    many (partners: [sources.zap_runs.accounts.<name>], accounts_file, or `accounts` given by an
    app) or the one at the top of [sources.zap_runs], and the share of the rate budget: those of
    `shard` ("i/n") and 1/n of it."""
    shared = {"client_id": client_id, "client_secret": client_secret}
    named = accounts if accounts is None or isinstance(accounts, Mapping) else None
    given = None if named is not None or accounts is None else accounts
    found = collect(named, accounts_file, given, shared)
    many = bool(found.accounts or found.problems)
    if not many:  # one account, as configured at the top of [sources.zap_runs]
        single = {"name": account_name, "access_token": access_token,
                  "refresh_token": refresh_token}
        found = collect(None, None, [single], shared)
        if found.problems:
            raise ConfigError(_single_problem(found.problems[0][1], access_token, refresh_token))
    if not shard:
        return found, many, 1
    if not many:
        raise ConfigError("--shard needs accounts ([sources.zap_runs.accounts.<name>] or "
                          "accounts_file): one account cannot be split.")
    index, share = parse_shard(shard)
    found.accounts = [a for a in found.accounts if shard_of(a.name, share) == index]
    found.problems = [p for p in found.problems if shard_of(p[0], share) == index]
    return found, many, share


def _json_value(value: object, name: str) -> object:
    """A table given as JSON text (an environment variable such as SOURCES__ZAP_RUNS__ACCOUNTS)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigError(f"{name} (SOURCES__ZAP_RUNS__{name.upper()}) is not JSON; give a JSON "
                          "object, or a table in .dlt/secrets.toml.") from None


def _single_problem(message: str, access_token: str | None, refresh_token: str | None) -> str:
    """The one account's configuration problem, in the words of a single-account setup."""
    if not (access_token or "").strip() and not (refresh_token or "").strip():
        from .common.errors import MISSING_TOKEN
        return MISSING_TOKEN
    if "client_id" in message:
        return ("refresh_token needs client_id and client_secret too: set all three under "
                "[sources.zap_runs] in .dlt/secrets.toml.")
    if "account name" in message:
        return ("account_name under [sources.zap_runs] must be 1-100 letters, digits or _.@+- "
                "(starting with a letter or digit).")
    return message


def _policies(found, data_policy: object) -> dict[str, object]:
    """Each account's DataPolicy (reading/policy.py): the source's, with the account's overrides; an
    account whose policy is bad becomes a bad entry.

    dlt hands a table argument over from the first provider that has it, so [data_policy] in
    config.toml and its redact_salt in secrets.toml are merged here (policy.config_table);
    what the caller passes wins."""
    from .reading.policy import DataPolicy, config_table

    base = DataPolicy.from_config(_merged(config_table(), data_policy))
    policies: dict[str, object] = {}
    for account in list(found.accounts):
        table = account.data_policy
        if account.where.startswith("[sources.zap_runs.accounts."):
            table = _merged(config_table(f"sources.zap_runs.accounts.{account.name}.data_policy"),
                            table)
        if table is None:
            policies[account.name] = base
            continue
        try:
            policies[account.name] = DataPolicy.from_config(
                table, base=base, where=f"{account.where} data_policy")
        except ConfigError as exc:
            found.accounts.remove(account)
            found.problems.append((account.name, str(exc)))
    return policies


def _merged(configured: object, given: object) -> object:
    if not isinstance(configured, Mapping) or not isinstance(given, Mapping):
        return given if given is not None else configured
    return {**configured, **given}


# Runs are merged on id with delete-insert: a changed run's row is replaced, and with it every
# row of its nested steps table (also when its list shrank, emptied or became null). On DuckDB
# and PostgreSQL dlt merges a root table and its nested tables in one transaction, so a reader
# never sees a run with another version's steps. dlt's merge deduplicates the staged step rows
# by row id inside that transaction (a run staged twice is not: docs/dlt-gaps.md, 1, and
# warehouse/merge_gap.py); on DuckDB, where nothing is staged twice and that dedup runs out of
# memory under the load's cap, it is skipped (warehouse/destinations.py).
MERGE = {"disposition": "merge", "strategy": "delete-insert"}


@dlt.resource(name="zap_runs", section="zap_runs", primary_key=("account_id", "id"),
              write_disposition=MERGE,
              columns=RUN_COLUMNS, nested_hints={"steps": {"columns": STEP_COLUMNS}})
def zap_runs(sweep: Sweep) -> Iterator[object]:
    """Runs in [cursor - lookback, now), plus the watched runs (open, or failed within the
    replay horizon) that changed since the last sync (reading/incremental.py says how it finds them).

    The cursor is kept by hand rather than with dlt.sources.incremental: re-reading watched runs
    deliberately reads rows older than the cursor, which incremental would filter out. Each
    account's cursor and watched runs are a row of zap_runs_account_state, loaded with its runs
    (accounts/state.py; on the Delta lake, dlt's resource state), so a failed sync moves nothing.
    Run ids are unique only within an account: the key is (account_id, id).
    """
    yield from sweep.read(dlt.current.resource_state())
    if sweep.raise_on_failed:
        raise_after_load(sweep.outcomes)
