"""A real sync process that dies, or loses its database connection, at a chosen point.

Usage: python -m tests.crash_sync STAGE [cli args]; everything after STAGE is the real command
line. Used by test_crash_safety (SIGKILL) and test_failed_loads (a lost PostgreSQL connection).

SIGKILL stages: extract, normalize, complete (see below), and four around the staging copy
jobs of a merge (both tables are copied into the staging dataset, then one merge job moves
them into the dataset in one transaction):
  runs_committed   zap_runs' copy job committed its rows; zap_runs__steps' job is held back
  steps_committed  zap_runs__steps' copy job committed; zap_runs' job is held back
  staged           both copy jobs committed, the merge has not started
  runs_partly_committed  zap_runs comes in several files: the first copy job ran and was
                   recorded, the second committed; every other copy job is held back
In all of them dlt has not yet recorded the committed jobs; the next sync aborts the package
(warehouse/recovery.py) and reads its runs again.

Lost-connection stages (PostgreSQL): the loader's own backend is terminated (pg_terminate_backend
from another connection) in the merge job, which then fails and is retried by dlt:
  lost_before_merge  once, with the merge's connection open and nothing of it run yet
  lost_in_merge      on every attempt, after all but the last statement of its transaction
  lost_copy_ack      once, in zap_runs' copy job right after its commit: the job fails as if
                     the COMMIT's reply had been lost, and dlt runs it again
If CRASH_SYNC_PAUSE is set ("READ_FD,WRITE_FD", fds passed by the test), the first termination
writes "terminated\\n" to WRITE_FD and waits for a line on READ_FD, so the test can read the
warehouse at that very moment. And slow_merge: the merge waits inside its transaction, before
its last statement (pause_in_merge). Tests may also install a stage in their own process
(`install(stage, monkeypatch.setattr)`).
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psycopg2
from dlt.common.destination.client import RunnableLoadJob
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.pipeline.pipeline import Pipeline

from pipelines.zap_runs.api import client as http
from pipelines.zap_runs.cli.main import main

DATA_TABLES = ("zap_runs", "zap_runs__steps")


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def after(count):
    """Kill on the call after `count` calls of the patched method."""
    calls = {"n": 0}

    def wrap(original):
        def patched(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > count:
                die()
            return original(*args, **kwargs)
        return patched
    return wrap


def patch_jobs(wrap, set_attr=setattr) -> None:
    """Replace each load job's `run` with `wrap(job, run)` (None keeps the job's own run).

    run_managed opens the job's connection, calls run() and only then records the job as done,
    so code after run() sits in the gap where the destination has committed and dlt does not
    know it yet.
    """
    run_managed = RunnableLoadJob.run_managed

    def patched(job, job_client, done_event, /):
        replaced = wrap(job, job.run)
        if replaced is not None:
            job.run = replaced
        return run_managed(job, job_client, done_event)
    set_attr(RunnableLoadJob, "run_managed", patched)


def is_copy(job) -> bool:
    """A job copying a data table's rows (into the staging dataset, as both are merged)."""
    return job.load_table_name in DATA_TABLES and job.job_file_info().file_format != "sql"


def is_merge(job) -> bool:
    return job.load_table_name == "zap_runs" and job.job_file_info().file_format == "sql"


def kill_after_copy_of(tables: tuple[str, ...], set_attr=setattr) -> None:
    """SIGKILL once the copy jobs of `tables` have committed; other copy jobs wait (dlt runs a
    package's jobs in parallel threads), so they commit nothing."""
    never = threading.Event()
    committed = threading.Barrier(len(tables), action=die)

    def wrap(job, run):
        if not is_copy(job):
            return None

        def patched():
            if job.load_table_name not in tables:
                never.wait()
            run()
            committed.wait()
        return patched
    patch_jobs(wrap, set_attr)


def kill_after_second_copy_of_runs(set_attr=setattr) -> None:
    """SIGKILL once a second zap_runs copy job has committed, the first having finished
    (dlt has its record); all other copy jobs wait."""
    recorded, never, turns = threading.Event(), threading.Event(), itertools.count()
    run_managed = RunnableLoadJob.run_managed

    def patched(job, job_client, done_event, /):
        if not is_copy(job):
            return run_managed(job, job_client, done_event)
        turn = next(turns) if job.load_table_name == "zap_runs" else None
        if turn is None or turn > 1:
            never.wait()
        if turn == 0:
            run_managed(job, job_client, done_event)
            return recorded.set()
        recorded.wait()
        run = job.run

        def then_die():
            run()
            die()
        job.run = then_die
        return run_managed(job, job_client, done_event)
    set_attr(RunnableLoadJob, "run_managed", patched)


def pause() -> None:
    """Let the test look at the destination now, if it asked to (CRASH_SYNC_PAUSE)."""
    fds = os.environ.pop("CRASH_SYNC_PAUSE", None)
    if fds is None:
        return
    read_fd, write_fd = (int(fd) for fd in fds.split(","))
    os.write(write_fd, b"terminated\n")
    with os.fdopen(read_fd) as answer:
        answer.readline()


def terminate(connection) -> None:
    """End a backend from outside, as a restarted server or a dropped network would, and wait
    until it is gone."""
    pid = connection.get_backend_pid()
    killer = psycopg2.connect(os.environ["DESTINATION__POSTGRES__CREDENTIALS"])
    try:
        with killer.cursor() as cursor:
            cursor.execute("select pg_terminate_backend(%s, 60000)", (pid,))
            assert cursor.fetchone()[0], f"backend {pid} was not terminated"
    finally:
        killer.close()
    pause()


def lose_connection_in_merge(before: bool, attempts: int | None, set_attr=setattr) -> None:
    """Terminate the merge job's connection before its SQL (or before its last statement),
    in its first `attempts` attempts (None: all)."""
    calls = {"n": 0}

    def wrap(job, run):
        if not is_merge(job):
            return None
        calls["n"] += 1
        if attempts is not None and calls["n"] > attempts:
            return None

        def patched():
            client = job._job_client.sql_client  # set by run_managed, open while run() runs
            if before:
                terminate(client.native_connection)
                return run()
            execute_many = client.execute_many

            def split(statements, *args, **kwargs):
                *head, last = statements
                execute_many(head, *args, **kwargs)
                terminate(client.native_connection)
                return execute_many([last], *args, **kwargs)
            client.execute_many = split
            return run()
        return patched
    patch_jobs(wrap, set_attr)


def pause_in_merge(set_attr=setattr) -> None:
    """A slow merge: inside its transaction, before its last statement, create the file named by
    CRASH_SYNC_MARKER and wait CRASH_SYNC_SLOW seconds (4 by default), so a test can read the
    warehouse (or kill the sync) while the merge is half done."""
    def wrap(job, run):
        if not is_merge(job):
            return None

        def patched():
            client = job._job_client.sql_client
            execute_many = client.execute_many

            def split(statements, *args, **kwargs):
                *head, last = statements
                execute_many(head, *args, **kwargs)
                Path(os.environ["CRASH_SYNC_MARKER"]).touch()
                time.sleep(float(os.environ.get("CRASH_SYNC_SLOW", "4")))
                return execute_many([last], *args, **kwargs)
            client.execute_many = split
            return run()
        return patched
    patch_jobs(wrap, set_attr)


def lose_copy_acknowledgement(set_attr=setattr, lose=None) -> None:
    """zap_runs' first copy job commits, then its connection is terminated and the job fails
    as if the reply to its COMMIT had been lost (the one failure that cannot tell whether the
    rows went in). `lose(job)`: how the reply is lost (default: the PostgreSQL backend ends)."""
    lost = threading.Event()

    def wrap(job, run):
        if not is_copy(job) or job.load_table_name != "zap_runs" or lost.is_set():
            return None
        lost.set()

        def patched():
            run()
            (lose or _connection_lost)(job)
        return patched
    patch_jobs(wrap, set_attr)


def _connection_lost(job) -> None:
    terminate(job._job_client.sql_client.native_connection)
    raise psycopg2.OperationalError("server closed the connection unexpectedly")


def install(stage: str, set_attr=setattr) -> None:
    """Make this process fail at `stage`; `set_attr` patches (a test passes monkeypatch's)."""
    if stage == "extract":  # mid-extract, after three pages
        set_attr(http.ZapierClient, "get_runs", after(3)(http.ZapierClient.get_runs))
    elif stage == "normalize":  # the package is extracted, normalization starts
        set_attr(Pipeline, "normalize", after(0)(Pipeline.normalize))
    elif stage == "runs_committed":
        kill_after_copy_of(("zap_runs",), set_attr)
    elif stage == "steps_committed":
        kill_after_copy_of(("zap_runs__steps",), set_attr)
    elif stage == "staged":
        kill_after_copy_of(DATA_TABLES, set_attr)
    elif stage == "runs_partly_committed":
        kill_after_second_copy_of_runs(set_attr)
    elif stage == "complete":  # every job ran; the load is not yet marked complete
        set_attr(SqlJobClientBase, "complete_load", after(0)(SqlJobClientBase.complete_load))
    elif stage == "lost_before_merge":
        lose_connection_in_merge(before=True, attempts=1, set_attr=set_attr)
    elif stage == "lost_in_merge":
        lose_connection_in_merge(before=False, attempts=None, set_attr=set_attr)
    elif stage == "slow_merge":
        pause_in_merge(set_attr)
    elif stage == "lost_copy_ack":
        lose_copy_acknowledgement(set_attr)
    else:
        sys.exit(f"unknown stage {stage}")


if __name__ == "__main__":
    install(sys.argv[1])
    sys.exit(main(sys.argv[2:]))

