"""The DuckDB file's storage format: made in one that the DuckDB 1.x of dashboard tools reads."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dlt
import duckdb

from ..common.errors import ConfigError
from ..common.settings import DEFAULT_STORAGE_VERSION

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^(v\d+\.\d+\.\d+|latest)$")


def duckdb_path(pipeline: dlt.Pipeline) -> str | None:
    """The DuckDB file a pipeline writes, or None for other destinations and in-memory ones."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    client = pipeline.destination_client()  # not entered: no connection is opened
    database = getattr(client.config.credentials, "database", None)
    return None if not database or database.startswith(":") else str(database)


def check_storage_version(value: str) -> str:
    """`duckdb_storage_version` (under [sources.zap_runs]) as DuckDB takes it: a DuckDB version
    such as "v1.4.0", or "latest"; ConfigError for anything else."""
    value = value.strip()
    if not _VERSION.match(value):
        raise ConfigError(f"duckdb_storage_version {value!r} is not a DuckDB version: use one such "
                          f"as \"{DEFAULT_STORAGE_VERSION}\" (the oldest DuckDB your dashboard tools "
                          "run) or \"latest\", under [sources.zap_runs].")
    return value


def prepare_duckdb_file(pipeline: dlt.Pipeline, storage_version: str) -> None:
    """Make the pipeline's DuckDB file in `storage_version` (duckdb_storage_version) if it does
    not exist yet.

    DuckDB keeps a file's format whenever it writes to it later, so dlt's loads and the SQL
    models keep it readable by older clients. A file that exists already is never rewritten:
    a newer format than the setting only earns a warning that says how to convert it.
    """
    path = duckdb_path(pipeline)
    if path is None:
        return
    wanted = check_storage_version(storage_version)
    if Path(path).exists():
        _warn_if_newer(path, wanted)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with duckdb.connect() as con:
            con.execute(f"attach '{_literal(path)}' as new_file (storage_version '{wanted}')")
    except duckdb.InvalidInputException as exc:  # DuckDB knows no such version
        raise ConfigError(f"duckdb_storage_version {wanted!r}: {str(exc).splitlines()[0]}") \
            from None
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        # Another process created it a moment ago and holds it; the sync waits for it.
        log.debug("the new DuckDB file %s is being created by another process", path)
        return
    log.info("created the DuckDB file %s in storage format %s", path, wanted)


def file_storage_version(path: str) -> str | None:
    """The format of an existing DuckDB file as DuckDB names it ("v1.4.0+", "v2.0.0+"), or
    None when the file cannot be read now (another process writes it)."""
    try:
        with duckdb.connect() as con:
            con.execute(f"attach '{_literal(path)}' as existing_file (read_only)")
            row = con.execute("select tags['storage_version'] from duckdb_databases() "
                              "where database_name = 'existing_file'").fetchone()
    except duckdb.IOException:
        return None
    return str(row[0]) if row and row[0] else None


def _warn_if_newer(path: str, wanted: str) -> None:
    if wanted == "latest":
        return
    found = file_storage_version(path)
    if found is None or _key(found) <= _key(wanted):
        return
    log.warning(
        "the DuckDB file %s is in DuckDB's %s storage format, newer than duckdb_storage_version "
        "%s: DuckDB clients older than %s (and the dashboard tools built on them) cannot open it. "
        "zap-runs does not rewrite existing files; to convert it see docs/dashboards.md (Pointing "
        "dashboard tools at the DuckDB file), or set duckdb_storage_version = \"latest\" to "
        "silence this.", path, found.rstrip("+"), wanted, found.rstrip("+"))


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _literal(path: str) -> str:
    return path.replace("'", "''")
