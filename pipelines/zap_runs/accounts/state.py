"""Each account's sync state (cursor, watched runs, hourly counts, refusals) in the warehouse: a
row per account per load in `zap_runs_account_state`, loaded in the same load package as the runs
it describes, and read back for the accounts a pass visits.

dlt's pipeline state is one blob that dlt serialises, hashes, compresses and stores anew on every
load (and copies into every load package): per-account state there grows with the accounts (about
6 MB at 1,000). dlt's docs advise "use your loaded data as the state" for such state; so the
pipeline state keeps no account, and a pass reads only the rows of the accounts it visits.

The rows are appended, and a state counts only once its whole load package is loaded: dlt loads
this table in a job and transaction of its own, which may commit before the runs' merge. A row
is read when its `_dlt_load_id` is a completed load in `_dlt_loads` (as dlt restores its own
state), the newest such row per account; older rows of those accounts are then deleted. A sync
killed between the two jobs, whose pipeline folder is then lost, reads the state before it.

State from before (under the resource state's "accounts", or at its top from before accounts) is
read when an account has no row yet, and every such account's state is written as a row; it
stays in the pipeline state until a pass finds every such account's row of a completed load
(a first package that is aborted loses nothing), and then goes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import dlt
import sqlglot
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from ..common.clock import utcnow
from ..common.sqltables import add_column, columns_of, exists

log = logging.getLogger(__name__)

TABLE = "zap_runs_account_state"
COLUMNS = [
    {"name": "account_id", "data_type": "text", "nullable": False},
    {"name": "state", "data_type": "text", "nullable": True},
    {"name": "updated_at", "data_type": "timestamp", "nullable": True},
    # The pipeline (a shard's, say) that read the account last: forget goes through it.
    {"name": "pipeline_name", "data_type": "text", "nullable": True},
    # Its schedule (schedule.py), for the next pass to plan without reading every state, and for
    # status and the account_freshness mart.
    {"name": "last_read_at", "data_type": "timestamp", "nullable": True},
    {"name": "next_due_at", "data_type": "timestamp", "nullable": True},
    {"name": "due_reason", "data_type": "text", "nullable": True},
    {"name": "worth", "data_type": "double", "nullable": True},
    {"name": "requests_per_read", "data_type": "double", "nullable": True},
    # The max_staleness the plan kept to, for the account_freshness mart's is_beyond_max_staleness
    # (a configuration value the warehouse would not know otherwise).
    {"name": "max_staleness_hours", "data_type": "double", "nullable": True},
    # Not read before this (an account whose requests failed backs off; a paused or refused one
    # waits), unless its credentials changed from the refused ones (their fingerprint).
    {"name": "held_until", "data_type": "timestamp", "nullable": True},
    {"name": "refused_fingerprint", "data_type": "text", "nullable": True},
]
# COLUMNS' types in the warehouse's words (PostgreSQL's, transpiled), for ensure_table.
SQL_TYPES = {"text": "varchar", "timestamp": "timestamptz", "double": "double precision"}
SCHEDULE_COLUMNS = ("last_read_at", "next_due_at", "due_reason", "worth", "requests_per_read",
                    "held_until", "refused_fingerprint")
# Accounts whose rows one query reads.
READ_CHUNK = 500
# Resource state of the version before accounts: it belongs to the default account.
LEGACY_KEYS = ("cursor", "watched", "open_runs", "last_window")


def legacy_states(resource_state: dict, default: str, take: bool = True) -> dict[str, dict]:
    """The per-account state an older version kept in the pipeline state (state from before
    accounts, at the top, becomes the `default` account's); taken out of it unless not `take`."""
    get = resource_state.pop if take else resource_state.get
    accounts = dict(get("accounts", None) or {})
    top = {key: get(key) for key in LEGACY_KEYS if key in resource_state}
    if top:
        accounts[default] = {**accounts.get(default, {}), **top}
    return accounts


def declare(resource: Any) -> None:
    """Give the zap_runs resource the table variant its state rows go to: none of the runs'
    columns, keys or nested tables; appended (the newest completed row counts)."""
    resource.apply_hints(table_name=TABLE, columns={}, nested_hints={}, create_table_variant=True)
    resource.apply_hints(table_name=TABLE, columns=COLUMNS, primary_key=[], merge_key=[],
                         write_disposition="append", create_table_variant=True)


def in_table(pipeline: dlt.Pipeline | None) -> bool:
    """Whether the states live in TABLE: everywhere but the Delta lake, where dlt writes
    `_dlt_loads` as plain files no reader can join, so there is no telling a completed load's row
    from one whose package never finished; there the states stay in dlt's pipeline state."""
    from ..common.table_format import is_delta_lake

    return pipeline is None or not is_delta_lake(pipeline)


def rows(states: dict[str, dict], pipeline_name: str | None,
         schedules: dict[str, dict] | None = None) -> Any:
    """The states as one batch of rows for TABLE (declare() gave it its hints), with each
    account's SCHEDULE_COLUMNS from `schedules`."""
    now = utcnow()
    schedules = schedules or {}
    return dlt.mark.with_table_name(
        [{"account_id": name, "state": json.dumps(state, separators=(",", ":")), "updated_at": now,
          "pipeline_name": pipeline_name, **schedules.get(name, {})}
         for name, state in states.items()], TABLE)


def read_schedules(pipeline: dlt.Pipeline) -> dict[str, dict]:
    """SCHEDULE_COLUMNS (and updated_at) of every account's current row, without its state (a
    pass plans over every account and reads the states of those it visits); a column an older
    version did not write is None."""
    try:
        return current_rows(pipeline, (*SCHEDULE_COLUMNS, "updated_at"))
    except DatabaseUndefinedRelation:  # the dataset does not exist yet
        return {}


def current_rows(pipeline: dlt.Pipeline, columns: Iterable[str]) -> dict[str, dict]:
    """`columns` of every account's current row (its newest of a completed load), for `status`;
    a column the table lacks (made by an older version) is None; {} before the table's first
    load."""
    columns = list(columns)
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(TABLE)
        loads = client.make_qualified_table_name("_dlt_loads")
        have = columns_of(client, table)  # asked first: a failed query would abort a transaction
        if have is None or not exists(client, loads):
            return {}
        picked = [name for name in columns if name in have]
        selected = "".join(f", s.{name}" for name in picked)
        rows = client.execute_sql(
            f"select * from (select s.account_id{selected}, row_number() over (partition by "
            f"s.account_id order by s._dlt_load_id desc) as n from {table} s join {loads} l on "
            f"l.load_id = s._dlt_load_id and l.status = 0) newest where n = 1")
    found = {}
    for name, *values in rows:
        row = dict.fromkeys(columns)
        row.update(zip(picked, values[:len(picked)], strict=True))
        found[name] = row
    return found


def ensure_table(client, dialect: str) -> None:
    """The table as the SQL models read it (account_freshness), through `client`: made empty when
    no load has made it yet, and given the COLUMNS an older version made it without. dlt then
    finds them in the table (it compares its schema with the destination's columns) and adds
    nothing."""
    table = client.make_qualified_table_name(TABLE)
    have = columns_of(client, table)
    if have is None:
        columns = ", ".join(f"{c['name']} {SQL_TYPES[c['data_type']]}" for c in COLUMNS)
        ddl = sqlglot.transpile(f"create table t_ ({columns}, _dlt_load_id varchar not null, "
                                "_dlt_id varchar not null)", read="postgres", write=dialect)[0]
        client.execute_sql(ddl.replace("t_", table, 1))  # as the client quoted it (common/sqltables.py)
        return
    for column in COLUMNS:
        if column["name"] not in have:
            client.execute_sql(add_column(table, column["name"], SQL_TYPES[column["data_type"]],
                                          dialect))


def pipelines_of(client, account: str) -> list[str]:
    """The pipeline (a shard's, say) whose newest completed row holds the account's state, if
    any, through `client`."""
    table = client.make_qualified_table_name(TABLE)
    if not exists(client, table):  # asked first: a failed query would abort a transaction
        return []
    loads = client.make_qualified_table_name("_dlt_loads")
    found = client.execute_sql(
        f"select s.pipeline_name from {table} s join {loads} l on l.load_id = s._dlt_load_id and "
        f"l.status = 0 where s.account_id = %s order by s._dlt_load_id desc limit 1", account)
    return [name for (name,) in found if name]


def read_states(pipeline: dlt.Pipeline, names: Iterable[str]) -> dict[str, dict]:
    """The stored state of each of `names` that has one: its newest row of a completed load
    (none before the table's first load). Older rows of those accounts are deleted."""
    names = sorted(set(names))
    found: dict[str, dict] = {}
    newest: dict[str, list[str]] = {}  # load id -> the accounts whose newest row it holds
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE)
            loads = client.make_qualified_table_name("_dlt_loads")
            for chunk, marks in _chunks(names):
                rows = client.execute_sql(
                    f"select account_id, state, _dlt_load_id from (select s.account_id, s.state, "
                    f"s._dlt_load_id, row_number() over (partition by s.account_id order by "
                    f"s._dlt_load_id desc) as n from {table} s join {loads} l on l.load_id = "
                    f"s._dlt_load_id and l.status = 0 where s.account_id in ({marks})) newest "
                    f"where n = 1", *chunk)
                for name, text, load_id in rows:
                    found[name] = _loaded(name, text)
                    newest.setdefault(load_id, []).append(name)
    except DatabaseUndefinedRelation:  # the dataset or the table does not exist yet
        return {}
    _delete_superseded(pipeline, newest)
    return found


def _delete_superseded(pipeline: dlt.Pipeline, newest: dict[str, list[str]]) -> None:
    """Delete the rows older than each account's newest completed one (`newest`: load id ->
    accounts); housekeeping, so a failure (a concurrent DELETE on BigQuery) only costs a line."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE)
            for load_id, accounts in newest.items():
                for chunk, marks in _chunks(accounts):
                    client.execute_sql(f"delete from {table} where account_id in ({marks}) and "
                                       f"_dlt_load_id < %s", *chunk, load_id)
    except Exception as exc:  # noqa: BLE001 - the next pass deletes them
        log.warning("could not delete older rows of %s (the next sync tries again): %s", TABLE,
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)


def _chunks(names: list[str]) -> Iterable[tuple[list[str], str]]:
    """The names READ_CHUNK at a time, each with its `%s, %s, ...` placeholders."""
    for start in range(0, len(names), READ_CHUNK):
        chunk = names[start:start + READ_CHUNK]
        yield chunk, ", ".join(["%s"] * len(chunk))


def _loaded(name: str, text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        log.warning("ignoring the unreadable stored state of account %s: it is read afresh", name)
        return {}
    return value if isinstance(value, dict) else {}


def current_pipeline() -> dlt.Pipeline | None:
    """The pipeline extracting the resource, or None when it is iterated outside one."""
    try:
        dlt.current.load_package_state()
    except Exception:  # noqa: BLE001 - no load package: no pipeline runs the resource
        return None
    return dlt.current.pipeline()
