"""Each sync's outcome, kept in the warehouse (table zap_runs_sync_log) for people and monitors:
one row per account per pass (`sync_id` names the pass; `account_id` is NULL only on the row of
a pass that failed before it read any account, and on the rows of bad configuration entries,
whose result is 'invalid')."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import dlt
import sqlglot

from ..common.errors import first_line
from ..common.settings import SQL_DIALECTS
from ..common.sqltables import add_column, columns_of

log = logging.getLogger(__name__)

TABLE = "zap_runs_sync_log"
DDL = (
    "create table if not exists {table} ("
    "sync_id varchar, started_at timestamptz, ended_at timestamptz, result varchar, "
    "error varchar, warning varchar, window_from timestamptz, window_to timestamptz, "
    "runs_fetched bigint, runs_new bigint, runs_updated bigint, steps_loaded bigint, "
    "open_runs bigint, requests bigint, retries bigint, rate_limited bigint)"
)
# Added later (ADDED_COLUMNS): a log made by an older version gets them (ALTER TABLE) before its
# next row.
SPEND_COLUMNS = {"account_id": "varchar", "requests_new": "bigint", "requests_open": "bigint",
                 "requests_errors": "bigint", "requests_rechecks": "bigint", "requests_lookback": "bigint",
                 "requests_unlisted": "bigint", "requests_late": "bigint", "budget": "bigint",
                 "budget_ratio": "double precision"}
# When the account was last read (its last success, also on a failed row), when it is next due
# and why (the pass's plan, accounts/schedule.py): NULL on rows of passes before schedules.
SCHEDULE_COLUMNS = {"last_read_at": "timestamptz", "next_due_at": "timestamptz",
                    "due_reason": "varchar"}
ADDED_COLUMNS = {**SPEND_COLUMNS, **SCHEDULE_COLUMNS}
COLUMNS = ("sync_id", "started_at", "ended_at", "result", "error", "warning", "window_from",
           "window_to", "runs_fetched", "runs_new", "runs_updated", "steps_loaded", "open_runs",
           "requests", "retries", "rate_limited", *ADDED_COLUMNS)


@dataclass
class Outcome:
    """One row of the sync log."""

    sync_id: str
    started_at: datetime
    ended_at: datetime
    result: str
    account_id: str | None = None
    error: str | None = None
    warning: str | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None
    runs_fetched: int | None = None
    runs_new: int | None = None
    runs_updated: int | None = None
    steps_loaded: int | None = None
    open_runs: int | None = None
    requests: int | None = None
    retries: int | None = None
    rate_limited: int | None = None
    requests_new: int | None = None
    requests_lookback: int | None = None
    requests_open: int | None = None
    requests_errors: int | None = None
    requests_rechecks: int | None = None
    requests_unlisted: int | None = None
    requests_late: int | None = None
    budget: int | None = None
    budget_ratio: float | None = None
    last_read_at: datetime | None = None
    next_due_at: datetime | None = None
    due_reason: str | None = None


# Rows one INSERT statement writes.
INSERT_ROWS = 200


def record(pipeline: dlt.Pipeline, outcomes: Outcome | list[Outcome], quiet: bool = False) -> None:
    """Append the outcomes; a destination that cannot take them only costs a log line (at INFO
    when `quiet`: the sync failed, and its own error tells the user)."""
    outcomes = [outcomes] if isinstance(outcomes, Outcome) else outcomes
    dialect = SQL_DIALECTS.get(pipeline.destination.destination_name)
    if dialect is None:
        return
    try:
        with pipeline.sql_client() as client:
            if not client.has_dataset():
                client.create_dataset()
            table = client.make_qualified_table_name(TABLE)
            ensure_table(client, table, dialect)
            row = f"({', '.join(['%s'] * len(COLUMNS))})"
            with client.begin_transaction():
                # Many rows a statement: a loop's round over many accounts writes one row each,
                # and a statement a row cost it seconds a round at 10,000 accounts.
                for start in range(0, len(outcomes), INSERT_ROWS):
                    chunk = outcomes[start:start + INSERT_ROWS]
                    client.execute_sql(
                        f"insert into {table} ({', '.join(COLUMNS)}) values "
                        + ", ".join([row] * len(chunk)),
                        *[getattr(outcome, c) for outcome in chunk for c in COLUMNS])
    except Exception as exc:  # noqa: BLE001 - the sync's own result matters more than its log
        (log.info if quiet else log.warning)("could not record the sync outcome in %s: %s", TABLE,
                                             first_line(exc, 200))


def ensure_table(client, table: str, dialect: str) -> None:
    """The log table, made if missing, with the columns added since it may have been made."""
    client.execute_sql(sqlglot.transpile(DDL.format(table=table), read="postgres",
                                         write=dialect)[0])
    have = columns_of(client, table) or set()
    for name, kind in ADDED_COLUMNS.items():
        if name not in have:
            client.execute_sql(add_column(table, name, kind, dialect))
    # Earlier versions logged a bad entry as a failed "account" named by its location (a file
    # and line, or a table), which no account name can be (no spaces, no brackets): such rows
    # become what they are, once.
    client.execute_sql(f"update {table} set result = 'invalid', error = account_id || ': ' || "
                       f"coalesce(error, ''), account_id = null where account_id like '% %' "
                       f"or account_id like '%[%'")


def _rows(client, sql: str, *args: object) -> list[dict]:
    with client.execute_query(sql, *args) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def last_outcomes(pipeline: dlt.Pipeline, account: str | None = None
                  ) -> tuple[dict | None, dict | None]:
    """(the last row, the last successful row) of the log, or of `account`'s rows; None where
    there is none."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(TABLE)
        where, args = ("account_id = %s", (account,)) if account is not None else ("1 = 1", ())
        found = []
        for success in ("", " and result = 'success'"):
            rows = _rows(client, f"select * from {table} where {where}{success} "
                                 "order by started_at desc nulls last limit 1", *args)
            found.append(rows[0] if rows else None)
    return found[0], found[1]


def last_pass(pipeline: dlt.Pipeline) -> list[dict]:
    """Every row of the latest pass (the sync_id of the row that started last), its bad
    entries ('invalid') included, in the order they started; [] when the log is empty."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(TABLE)
        return _rows(client, f"select * from {table} where sync_id = (select sync_id from {table} "
                             "where sync_id is not null order by started_at desc nulls last "
                             "limit 1) order by started_at")


def newest_run_start(pipeline: dlt.Pipeline, account: str | None = None) -> datetime | None:
    """start_time of the newest run in zap_runs (of `account` if given): how fresh the data is."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("zap_runs")
        if account is None:
            return client.execute_sql(f"select max(start_time) from {table}")[0][0]
        return client.execute_sql(f"select max(start_time) from {table} where account_id = %s",
                                  account)[0][0]


def account_states(pipeline: dlt.Pipeline) -> list[dict]:
    """Per account in the log: its last sync (result, error, started_at) and last success
    (last_success_at, NULL if none). Bad entries of the configuration ('invalid') are no
    accounts."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(TABLE)
        sql = (f"with ranked as (select account_id, result, error, started_at, row_number() over "
               f"(partition by account_id order by started_at desc nulls last) as n from {table} "
               f"where account_id is not null and result <> 'invalid'), "
               f"successes as (select account_id, max(ended_at) as last_success_at from {table} "
               f"where result = 'success' group by account_id) "
               f"select ranked.account_id, ranked.result, ranked.error, ranked.started_at, "
               f"successes.last_success_at from ranked left join successes "
               f"on successes.account_id = ranked.account_id where ranked.n = 1 "
               f"order by ranked.account_id")
        return _rows(client, sql)
