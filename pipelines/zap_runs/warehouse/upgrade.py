"""Tables loaded before accounts existed get their `account_id`, once, before the next load.

Run and step rows of that version belong to the one account it read; without the column they
would not match the merge key (account_id, id) and every changed run would be stored twice. The
column is added and filled in one transaction; dlt then finds it in the table (it compares its
schema with the destination's columns) and adds nothing.
"""

from __future__ import annotations

import logging

import dlt

from ..common.errors import ConfigError
from ..common.settings import SQL_DIALECTS
from ..common.sqltables import add_column, columns_of
from ..common.table_format import is_delta_lake

log = logging.getLogger(__name__)

TABLES = ("zap_runs", "zap_runs__steps")


def add_account_id(pipeline: dlt.Pipeline, account: str) -> list[str]:
    """Give the tables that lack `account_id` the column, set to `account`; the tables changed."""
    if is_delta_lake(pipeline):
        _refuse_old_lake(pipeline)
        return []
    if pipeline.destination.destination_name not in SQL_DIALECTS:
        return []
    changed: list[str] = []
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return []
        dialect = SQL_DIALECTS[pipeline.destination.destination_name]
        _add(client, account, changed, dialect)
        # The staging dataset keeps the last merge's rows: dlt would add the key column there
        # NOT NULL and fail on them.
        with client.with_staging_dataset():
            if client.has_dataset():
                _add(client, account, changed, dialect)
    if changed:
        log.info("tables %s now carry account_id %r (rows loaded before accounts existed)",
                 ", ".join(changed), account)
    return changed


def _refuse_old_lake(pipeline: dlt.Pipeline) -> None:
    """Delta tables cannot be given a column and filled in one step here: a lake written
    before accounts is refused with what to do, rather than merged into twice."""
    from dlt.common.libs.deltalake import get_delta_tables

    try:
        tables = get_delta_tables(pipeline, *TABLES)
    except Exception:  # noqa: BLE001 - not loaded yet (or only one of them)
        return
    for name, table in tables.items():
        if "account_id" not in [field.name for field in table.schema().fields]:
            raise ConfigError(f"the Delta table {name} was written before accounts existed (no "
                              "account_id): sync into a new bucket_url or dataset_name with "
                              "--full-refresh, then move the readers over.")


def _add(client, account: str, changed: list[str], dialect: str) -> None:
    for table in TABLES:
        qualified = client.make_qualified_table_name(table)
        columns = columns_of(client, qualified)
        if columns is None or "account_id" in columns:  # not loaded yet, or done
            continue
        alter = add_column(qualified, "account_id", "varchar", dialect)
        update = f"update {qualified} set account_id = %s where account_id is null"
        if client.capabilities.supports_ddl_transactions:
            with client.begin_transaction():
                client.execute_sql(alter)
                client.execute_sql(update, account)
        else:  # BigQuery: DDL outside transactions; the update is safe to run again
            client.execute_sql(alter)
            client.execute_sql(update, account)
        changed.append(qualified)
