"""The error-rate dashboard: one self-contained HTML file (no script, nothing fetched) from the marts.

One account's page (`report --account NAME`), or the partner-wide page: it opens with the open
incidents (zap_incidents), then every account's zaps and, when there are several accounts, the
accounts that need attention (account_health), each account's open incidents and when it was
read and is next due (account_freshness) and the steps failing for several of them
(partner_step_failures). A warehouse of one account reads as that account's page did before
accounts existed. The sections are in page.py, the charts (inline SVG) in charts.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dlt

from ..common.errors import ConfigError
from ..common.sqltables import exists
from .data import Data
from .page import render
from .tables import TABLE_ROWS

KNOWN_SHOWN = 5  # accounts named when --account names none of them


def _rows(client, sql: str, *args: object) -> list[dict]:
    with client.execute_query(sql, *args) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _rules(client) -> tuple[int, int] | None:
    rows = client.execute_sql("select open_after, resolve_after from "
                              f"{client.make_qualified_table_name('incident_rules')}")
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def read_data(pipeline: dlt.Pipeline, account: str | None = None,
              configured: set[str] | None = None) -> Data:
    """The marts' rows for `account` (every account when None; of the `configured` accounts
    only, when given: --accounts-file); ConfigError for an account the warehouse does not know."""
    with pipeline.sql_client() as client:
        def select(table: str, order: str, *conditions: str) -> list[dict]:
            if account is not None:
                conditions = (*conditions, "account_id = %s")
            where = f" where {' and '.join(conditions)}" if conditions else ""
            return _rows(client, f"select * from {client.make_qualified_table_name(table)}{where} "
                                 f"order by {order}", *([account] if account is not None else []))

        accounts = _rows(client, f"select * from {client.make_qualified_table_name('account_health')} "
                                 "order by needs_attention desc, account_id")
        if account is not None and account not in {a["account_id"] for a in accounts}:
            raise unknown_account(account, sorted(a["account_id"] for a in accounts))
        if configured:
            accounts = [a for a in accounts if a["account_id"] in configured]
        # Models built by a version before zap_incidents have none.
        has_incidents = exists(client, client.make_qualified_table_name("zap_incidents"))
        data = Data(
            daily=select("zap_error_rates_daily", "day"),
            health=select("zap_health", "is_spiking desc, current_failure_streak desc, "
                                        "error_rate_7d desc nulls last, account_id, zap_id"),
            steps=select("zap_step_failures", "count_runs_failing desc, account_id, zap_id, step_number",
                         "count_runs_failing > 0"),
            durations=select("zap_run_durations", "day"),
            built_at=datetime.now(UTC),
            accounts=[a for a in accounts if account is None or a["account_id"] == account],
            # Steps that fail for one account are on the zap table already.
            shared_steps=[] if account is not None else _rows(
                client, f"select * from {client.make_qualified_table_name('partner_step_failures')} "
                        "where count_accounts_affected_7d > 1 order by count_accounts_affected_7d desc, "
                        f"count_runs_failing_7d desc, zap_title, step_number limit {TABLE_ROWS}"),
            account=account,
            freshness=[] if account is not None else _rows(
                client, f"select * from {client.make_qualified_table_name('account_freshness')} "
                        "order by account_id"),
            incidents=select("zap_incidents", "first_failed_at, account_id, zap_id", "is_open")
            if has_incidents else [],
            incident_rules=_rules(client) if has_incidents else None,
        )
    if configured:  # accounts taken out of the configuration are left out of the page
        for name in ("daily", "health", "steps", "durations", "freshness", "incidents"):
            setattr(data, name, [r for r in getattr(data, name) if r["account_id"] in configured])
    return data


def unknown_account(account: str, known: list[str]) -> ConfigError:
    """One line: the name was not found, a few it could have been, what to do."""
    if not known:
        return ConfigError(f"no account {account!r}: the warehouse holds no account yet; run a sync first.")
    shown = ", ".join(repr(name) for name in known[:KNOWN_SHOWN])
    more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
    return ConfigError(f"no account {account!r} in the warehouse (known: {shown}{more}); pass one of "
                       "them to --account, or leave --account out for every account.")


def write_report(pipeline: dlt.Pipeline, path: str | Path, account: str | None = None,
                 configured: set[str] | None = None) -> Path:
    """Write the dashboard of `account` (every account when None; of the `configured` ones only,
    when given) to `path`; its absolute path."""
    data = read_data(pipeline, account, configured)
    target = Path(path).resolve()
    target.write_text(render(data), encoding="utf-8")
    return target
