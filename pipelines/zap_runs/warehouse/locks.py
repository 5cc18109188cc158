"""Locks a sync waits for: one sync at a time per pipeline, and DuckDB's single-writer file lock."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

import dlt
import duckdb

from ..common.errors import ZapRunsError
from .duckdb_file import duckdb_path

log = logging.getLogger(__name__)


class SyncAlreadyRunning(ZapRunsError):
    """Another sync of the same pipeline kept the lock for the whole wait (exit 3)."""

    exit_code = 3


class DatabaseLocked(ZapRunsError):
    """The DuckDB file stayed locked by another process for the whole wait."""


class SyncLock:
    """`with SyncLock(path, wait):` waits up to `wait` seconds for the previous sync to finish
    (overlap_wait_seconds under [sources.zap_runs]).

    flock is tied to the open file: when a sync dies, even by SIGKILL, the kernel releases it,
    so a crash never leaves a stale lock behind.
    """

    def __init__(self, path: Path, wait_seconds: float) -> None:
        self.path = path
        self.wait_seconds = wait_seconds
        self._handle = None

    def __enter__(self) -> SyncLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the whole sync
        deadline = time.monotonic() + self.wait_seconds
        warned = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                if time.monotonic() >= deadline:
                    handle.close()
                    raise SyncAlreadyRunning(
                        f"another sync of this pipeline is still running ({holder}); waited "
                        f"{self.wait_seconds:g} s for it. Schedule syncs further apart or raise "
                        "overlap_wait_seconds under [sources.zap_runs].") from None
                if not warned:
                    log.warning("another sync is running (%s); waiting up to %g s", holder,
                                self.wait_seconds)
                    warned = True
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        handle.flush()
        self._handle = handle
        return self

    def _holder(self) -> str:
        try:
            pid, started = self.path.read_text().split()[:2]
            return f"PID {pid}, started {started}"
        except (OSError, ValueError):
            return "holder unknown"

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def wait_for_duckdb(pipeline: dlt.Pipeline, wait_seconds: float) -> None:
    """Return once the file can be opened for writing; raise DatabaseLocked after `wait_seconds`
    (lock_wait_seconds under [sources.zap_runs]).

    DuckDB lets one process write a file at a time; a dashboard that opened it read-write (or
    another sync) holds a lock. Waiting changes nothing in the file, so it is never corrupted.
    """
    path = duckdb_path(pipeline)
    if path is None:
        return
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
