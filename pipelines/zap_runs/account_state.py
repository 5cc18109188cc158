"""Each account's sync state (cursor, watched runs, hourly counts, refusals) in the warehouse: one
row per account in `zap_runs_account_state`, loaded in the same load package as the runs it
describes, and read back for the accounts a pass visits.

dlt's pipeline state is one blob that dlt serialises, hashes, compresses and stores anew on every
load (and copies into every load package): per-account state there grows with the accounts (about
6 MB at 1,000). dlt's docs advise "use your loaded data as the state" for such state; so the
pipeline state keeps no account, and a pass reads only the rows of the accounts it visits.

State from before (under the resource state's "accounts", or at its top from before accounts) is
read when an account has no row yet, and every such account's state is written as a row in the
first pass, which then drops it from the pipeline state: both land in one load package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .clock import utcnow

log = logging.getLogger(__name__)

TABLE = "zap_runs_account_state"
COLUMNS = [
    {"name": "account_id", "data_type": "text", "nullable": False, "primary_key": True},
    {"name": "state", "data_type": "text", "nullable": True},
    {"name": "updated_at", "data_type": "timestamp", "nullable": True},
    # The pipeline (a shard's, say) that read the account last: forget goes through it.
    {"name": "pipeline_name", "data_type": "text", "nullable": True},
]
# Accounts whose rows one query reads.
READ_CHUNK = 500
# Resource state of the version before accounts: it belongs to the default account.
LEGACY_KEYS = ("cursor", "watched", "open_runs", "last_window")


def legacy_states(resource_state: dict, default: str) -> dict[str, dict]:
    """The per-account state an older version kept in the pipeline state, taken out of it
    (state from before accounts, at the top, becomes the `default` account's)."""
    accounts = resource_state.pop("accounts", None) or {}
    top = {key: resource_state.pop(key) for key in LEGACY_KEYS if key in resource_state}
    if top:
        accounts.setdefault(default, {}).update(top)
    return accounts


def declare(resource: Any, **hints: Any) -> None:
    """Give the zap_runs resource the table variant its state rows go to: none of the runs'
    columns or nested tables, keyed by account_id (`hints`: the write disposition and table
    format the runs get, so the state merges wherever the runs do)."""
    resource.apply_hints(table_name=TABLE, columns={}, nested_hints={}, create_table_variant=True)
    resource.apply_hints(table_name=TABLE, columns=COLUMNS, primary_key="account_id",
                         create_table_variant=True, **hints)


def rows(states: dict[str, dict], pipeline_name: str | None) -> Any:
    """The states as one batch of rows for TABLE (declare() gave it its hints)."""
    now = utcnow()
    return dlt.mark.with_table_name(
        [{"account_id": name, "state": json.dumps(state, separators=(",", ":")), "updated_at": now,
          "pipeline_name": pipeline_name} for name, state in states.items()], TABLE)


def pipelines_of(client, account: str) -> list[str]:
    """The pipelines whose row holds the account's state (at most one), through `client`."""
    from .sqltables import exists

    table = client.make_qualified_table_name(TABLE)
    if not exists(client, table):  # asked first: a failed query would abort a transaction
        return []
    found = client.execute_sql(f"select pipeline_name from {table} where account_id = %s", account)
    return [name for (name,) in found if name]


def read_states(pipeline: dlt.Pipeline, names: Iterable[str]) -> dict[str, dict]:
    """The stored state of each of `names` that has a row (none before the table's first load)."""
    names = sorted(set(names))
    if not names:
        return {}
    from .destinations import is_delta_lake

    if is_delta_lake(pipeline):
        return _read_lake(pipeline, names)
    found: dict[str, dict] = {}
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE)
            for start in range(0, len(names), READ_CHUNK):
                chunk = names[start:start + READ_CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                for name, text in client.execute_sql(
                        f"select account_id, state from {table} where account_id in ({marks})", *chunk):
                    found[name] = _loaded(name, text)
    except DatabaseUndefinedRelation:  # the dataset or the table does not exist yet
        return {}
    return found


def _read_lake(pipeline: dlt.Pipeline, names: list[str]) -> dict[str, dict]:
    from dlt.common.libs.deltalake import get_delta_tables

    try:
        table = get_delta_tables(pipeline, TABLE)[TABLE]
    except (ValueError, DestinationUndefinedEntity, KeyError):  # not loaded yet
        return {}
    # delta-rs cannot filter this string column by a list (string vs string_view): the names
    # are picked here; a lake's state table is one small row per account.
    data = table.to_pyarrow_table(columns=["account_id", "state"])
    wanted = set(names)
    return {name: _loaded(name, text) for name, text in zip(
        data.column("account_id").to_pylist(), data.column("state").to_pylist(), strict=True)
        if name in wanted}


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
