"""Helpers for tests of failed and killed syncs: the CLI's environment, and what a reader sees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .warehouse import drop_datasets, warehouse_runs

ROOT = Path(__file__).resolve().parents[1]


def configure(sim, db: Path, monkeypatch) -> None:
    """The CLI's settings for a sync of `sim` into the DuckDB file `db`, as environment
    variables (subprocesses inherit them)."""
    env = {"SOURCES__ZAP_RUNS__BASE_URL": sim.base_url, "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
           "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0", "DESTINATION__DUCKDB__CREDENTIALS": str(db),
           "SOURCES__ZAP_RUNS__PAGE_LIMIT": "50"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def harness(stage: str, args: list[str]) -> list[str]:
    """The command line of tests/crash_sync.py: the real CLI, failing at `stage`."""
    return [sys.executable, "-m", "tests.crash_sync", stage, *args]


def harness_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def killed_sync(stage: str, cwd: Path, args: list[str] | tuple[str, ...] = ()) -> None:
    """A real sync, SIGKILLed at `stage` (see tests/crash_sync.py)."""
    killed = subprocess.run(harness(stage, list(args)), cwd=cwd, env=harness_env(),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


def visible_runs(pipeline: dlt.Pipeline) -> dict[str, dict]:
    """What a reader sees now (warehouse_runs checks its invariants); no runs before the
    tables exist."""
    try:
        return warehouse_runs(pipeline)
    except DatabaseUndefinedRelation:
        return {}


def stray_steps(pipeline: dlt.Pipeline) -> tuple[int, int]:
    """Step rows whose run the runs table does not hold (by the natural key run_id), and step
    rows of a run held in another version (dlt's link _dlt_parent_id is not the run's _dlt_id)."""
    with pipeline.sql_client() as client:
        runs = client.make_qualified_table_name("zap_runs")
        steps = client.make_qualified_table_name("zap_runs__steps")
        [(orphans,)] = client.execute_sql(
            f"select count(*) from {steps} s where not exists "
            f"(select 1 from {runs} r where r.id = s.run_id)")
        [(foreign,)] = client.execute_sql(
            f"select count(*) from {steps} s join {runs} r on r.id = s.run_id "
            "where r._dlt_id <> s._dlt_parent_id")
    return orphans, foreign


def one_line_error(stderr: str) -> str:
    """The CLI's error line; fails unless it is one line, the last, and no traceback was shown."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr[-3000:]
    return errors[0]


def drop_if_there(pipeline: dlt.Pipeline) -> None:
    """drop_datasets, for a test that may have failed before its dataset was created."""
    with pipeline.sql_client() as client:
        there = client.has_dataset()
    if there:
        drop_datasets(pipeline)


def postgres_cli(request, monkeypatch, prefix: str) -> tuple[list[str], dlt.Pipeline]:
    """The CLI's arguments for a fresh dataset in the test PostgreSQL (its credentials set for
    subprocesses too), and a pipeline that reads it."""
    from .warehouse import postgres_pipeline

    dsn = request.getfixturevalue("postgres_dsn")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    dataset = f"zr_{prefix}_{uuid.uuid4().hex[:10]}"
    return ["--destination", "postgres", "--dataset", dataset], postgres_pipeline(dsn, dataset)
