"""How each destination merges runs for real, refusing the ones that can only append.

SQL destinations merge with dlt's `delete-insert`. The filesystem destination merges only
through an open table format: Delta (dlt's `upsert`, the one strategy dlt 1.31 has for Delta
tables with nested tables). With plain files dlt silently appends instead, so every re-read
run would be stored twice: such a setup is refused before anything is read.

Two gaps of dlt's Delta merge are closed here. It does not deduplicate within a load (delta-rs
refuses to match one stored row with two new ones, and stores a new run twice), so a run read
twice in one sync is passed on once. And it upserts a run's step rows by position but never
deletes the positions a shorter list no longer has, so after each load the step rows that
belong to an older version of their run are deleted (`drop_stale_steps`).
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.sources import DltSource

from ..common.errors import ConfigError
from ..common.sync_config import SyncConfig
from ..common.table_format import (
    FILESYSTEM_DEFAULT_FORMAT,
    configured_format,
    destination_kind,
    is_delta_lake,
    is_filesystem,
)

log = logging.getLogger(__name__)

RESOURCE = "zap_runs"
STEPS_TABLE = "zap_runs__steps"
# On the Delta lake, the sync that wrote a run's version, on the run and its step rows.
STAMP = "run_version"
DELETE_INSERT = {"disposition": "merge", "strategy": "delete-insert"}
# DuckDB: dlt's merge deduplicates nothing there, and its dedup of the nested table holds every
# step row in a window under the 64MB cap: a first pass of 89 accounts (55,204 runs, 224,898
# steps) ran out of memory; without it the same load passes. A copy into staging is one DuckDB
# transaction in this process (a retried one committed nothing) and dlt empties the staging
# tables before each load, so no row reaches staging twice.
DELETE_INSERT_IN_PROCESS = {**DELETE_INSERT, "deduplicated": True}
UPSERT = {"disposition": "merge", "strategy": "upsert"}
# Stale step rows are deleted by `_dlt_id`, this many in one delete.
DELETE_CHUNK = 5_000
FIX_FILESYSTEM = (f'set table_format = "{FILESYSTEM_DEFAULT_FORMAT}" under [sources.zap_runs] '
                  f"(or SOURCES__ZAP_RUNS__TABLE_FORMAT={FILESYSTEM_DEFAULT_FORMAT})")


def table_hints(destination: str | Destination, fmt: str | None = None) -> dict[str, Any]:
    """Hints for the zap_runs resource that make its merge real on `destination`:
    `write_disposition` (and `table_format` when there is one), for `resource.apply_hints`.

    Raises ConfigError, naming the fix, where the destination or format can only append.
    """
    dest = Destination.from_reference(destination) if isinstance(destination, str) else destination
    files = is_filesystem(dest)
    strategies = merge_strategies(dest, fmt)
    hints: dict[str, Any] = {"table_format": fmt} if fmt else {}
    if "delete-insert" in strategies:
        in_process = destination_kind(dest) == "duckdb"
        return {**hints, "write_disposition": DELETE_INSERT_IN_PROCESS if in_process else DELETE_INSERT}
    # dlt's Delta upsert leaves the step rows a shorter list no longer has; drop_stale_steps
    # deletes them. Iceberg's (pyiceberg) upsert and the vector stores' leave them for good.
    if "upsert" in strategies and files and fmt == "delta":
        if fmt == "delta" and importlib.util.find_spec("deltalake") is None:
            raise ConfigError("table_format delta needs the deltalake package: "
                              "pip install 'dlt[deltalake]' (a dependency of zap-runs).")
        return {**hints, "write_disposition": UPSERT}
    name = dest.destination_name
    if files and fmt is None:
        raise ConfigError(f"{name} with plain files can only append, so every sync would store "
                          f"re-read runs again: {FIX_FILESYSTEM}.")
    if files and fmt == "delta":
        raise ConfigError(f"{name}: dlt cannot merge Delta tables at this bucket_url, so every sync "
                          "would store re-read runs again: use an s3, gs, az or file bucket.")
    if files:
        raise ConfigError(f"{name} table_format {fmt!r} cannot replace a changed run's steps "
                          f"(dlt 1.31 only upserts it): {FIX_FILESYSTEM}.")
    if fmt:
        raise ConfigError(f"{name} cannot merge tables of format {fmt!r}, so every sync would store "
                          "re-read runs again: remove table_format under [sources.zap_runs].")
    raise ConfigError(f"{name} cannot merge a run with its steps (dlt gives it no delete-insert "
                      "merge), so every sync would store re-read runs again: use a destination "
                      "that merges, e.g. duckdb, postgres, bigquery, snowflake, or filesystem.")


def merge_strategies(dest: Destination, fmt: str | None) -> list[str]:
    """dlt's merge strategies for a root table of format `fmt` on `dest` (none: append only)."""
    caps = dest.capabilities()
    if fmt and fmt not in (caps.supported_table_formats or []):
        return []
    strategies = list(caps.supported_merge_strategies or [])
    if caps.merge_strategies_selector is not None:
        table: dict[str, Any] = {"name": RESOURCE, "columns": {}}
        if fmt:
            table["table_format"] = fmt
        strategies = list(caps.merge_strategies_selector(strategies, table_schema=table))
    return strategies


def prepare_source(source: DltSource, pipeline: dlt.Pipeline,
                   config: SyncConfig | None = None) -> dict[str, Any]:
    """Give the source's zap_runs resource the merge `pipeline`'s destination supports; call it
    before extracting. Raises ConfigError where only append is possible. Returns the hints.
    `config` defaults to the one resolved from [sources.zap_runs]."""
    fmt = configured_format(pipeline, config)
    hints = table_hints(pipeline.destination, fmt)
    resource = source.resources[RESOURCE]
    declared = resource.write_disposition
    if isinstance(declared, dict) and declared.get("strategy") == hints["write_disposition"]["strategy"]:
        # The resource's own merge options stand, with the destination's added.
        resource.apply_hints(**{**hints, "write_disposition": {**declared, **hints["write_disposition"]}})
    else:
        resource.apply_hints(**hints)
    if hints["write_disposition"] == UPSERT:
        resource.add_filter(FirstReadOnly())
    if fmt == "delta":
        # A run row and each of its step rows carry this sync's mark, so drop_stale_steps can
        # tell the rows of an older version from those the last merge wrote.
        resource.add_map(StampVersion())
    return hints


class StampVersion:
    """Marks a run row and each of its step rows with `run_version`, one value per sync."""

    def __init__(self) -> None:
        self.version = uuid.uuid4().hex

    def __call__(self, row: dict) -> dict:
        if "id" in row:  # a run (not an account's state row)
            row[STAMP] = self.version
            for step in row.get("steps") or ():
                if isinstance(step, dict):
                    step[STAMP] = self.version
        return row


class FirstReadOnly:
    """Passes each run once per sync: an upsert merge cannot take a key twice in one load.

    A guard: the resource already hands each run over once (its first read in the sync, which
    its open-run bookkeeping follows too). Run ids are unique within an account, and a pass
    reads its accounts one after another, so the ids seen are let go when the account changes.
    """

    def __init__(self) -> None:
        self.account: str | None = None
        self.seen: set[str] = set()

    def __call__(self, row: dict) -> bool:
        account = row.get("account_id")
        if account != self.account:
            self.account, self.seen = account, set()
        run_id = row.get("id")
        if run_id is None:  # an account's state row (accounts/state.py), not a run
            return True
        if run_id in self.seen:
            return False
        self.seen.add(run_id)
        return True


def drop_stale_steps(pipeline: dlt.Pipeline, config: SyncConfig | None = None) -> int:
    """Delete the Delta step rows that belong to an older version of their run; call it after
    every successful load. Returns how many were deleted (0 on other destinations).

    A step row is stale when its `run_version` differs from its run's: the run was merged again
    since, and its new version has fewer steps (or none). Lakes an older
    version wrote had the run's `_dlt_load_id` on each step row instead; such rows are judged by
    it. The whole lake is checked, not
    just this sync's runs, so a sync killed between its load and this step is made good by the
    next one.
    """
    if not is_delta_lake(pipeline, config):
        return 0
    from dlt.common.libs.deltalake import get_delta_tables

    try:
        tables = get_delta_tables(pipeline, RESOURCE, STEPS_TABLE)
    except (ValueError, DestinationUndefinedEntity):  # not loaded yet: nothing to check
        return 0
    steps = tables[STEPS_TABLE]
    stale = stale_step_ids(tables[RESOURCE], steps)
    for chunk in chunks(stale, DELETE_CHUNK):
        ids = ", ".join("'" + value.replace("'", "''") + "'" for value in chunk)
        steps.delete(f"_dlt_id IN ({ids})")
    if stale:
        log.info("deleted %d step rows of older run versions from %s", len(stale), STEPS_TABLE)
    return len(stale)


def lake_count(pipeline: dlt.Pipeline, table: str, config: SyncConfig | None = None) -> int | None:
    """Rows in a Delta table of the filesystem destination, read from the table's log (0 before
    its first load); None on other destinations or table formats."""
    if not is_delta_lake(pipeline, config):
        return None
    from dlt.common.libs.deltalake import get_delta_tables

    try:
        return int(get_delta_tables(pipeline, table)[table].count())
    except (ValueError, DestinationUndefinedEntity):  # not loaded yet
        return 0


def stale_step_ids(runs: Any, steps: Any) -> list[str]:
    """`_dlt_id`s of step rows of an older version of their run (drop_stale_steps; DuckDB joins
    the two Delta tables' Arrow datasets, streaming the larger one)."""
    import duckdb

    steps_data = steps.to_pyarrow_dataset()
    have = set(steps_data.schema.names)
    judged = []
    if STAMP in have:
        judged.append(f"(s.{STAMP} is not null and s.{STAMP} is distinct from r.{STAMP})")
    if "_dlt_load_id" in have:  # rows an older version wrote, with the run's load id
        legacy = f"s.{STAMP} is null and " if STAMP in have else ""
        judged.append(f"({legacy}s._dlt_load_id is distinct from r._dlt_load_id)")
    if not judged:
        return []
    con = duckdb.connect(config={"threads": 2, "memory_limit": "256MB"})
    try:
        con.register("runs", runs.to_pyarrow_dataset())
        con.register("steps", steps_data)
        rows = con.execute(
            "select s._dlt_id from steps s join runs r on s._dlt_root_id = r._dlt_id "
            f"where {' or '.join(judged)}").fetchall()
    finally:
        con.close()
    return [row[0] for row in rows]


def chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
