"""DuckDB's single-writer lock: wait for a dashboard or another process to let go of the file."""

from __future__ import annotations

import logging
import time

import dlt
import duckdb

from .errors import ZapRunsError

log = logging.getLogger(__name__)

DEFAULT_LOCK_WAIT_SECONDS = 120.0


class DatabaseLocked(ZapRunsError):
    """The DuckDB file stayed locked by another process for the whole wait."""


def duckdb_path(pipeline: dlt.Pipeline) -> str | None:
    """The DuckDB file a pipeline writes, or None for other destinations and in-memory ones."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    client = pipeline.destination_client()  # not entered: no connection is opened
    database = getattr(client.config.credentials, "database", None)
    return None if not database or database.startswith(":") else str(database)


def wait_for_duckdb(pipeline: dlt.Pipeline, wait_seconds: float | None = None) -> None:
    """Return once the file can be opened for writing; raise DatabaseLocked after the wait.

    DuckDB lets one process write a file at a time; a dashboard that opened it read-write (or
    another sync) holds a lock. Waiting changes nothing in the file, so it is never corrupted.
    """
    path = duckdb_path(pipeline)
    if path is None:
        return
    if wait_seconds is None:
        wait_seconds = float(dlt.config.get("sources.zap_runs.lock_wait_seconds") or
                             DEFAULT_LOCK_WAIT_SECONDS)
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    while True:
        try:
            duckdb.connect(path).close()
            return
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            holder = str(exc).split("Conflicting lock is held in", 1)[-1].strip().split("\n")[0]
            if time.monotonic() >= deadline:
                raise DatabaseLocked(
                    f"the DuckDB file {path} is locked by another process ({holder[:120]}); a "
                    f"dashboard or another sync holds it. Waited {wait_seconds:g} s: close it "
                    "(or open it read-only) and run again, or raise lock_wait_seconds under "
                    "[sources.zap_runs].") from None
            log.warning("the DuckDB file %s is locked by another process; waiting", path)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)
