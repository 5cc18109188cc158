"""A sync killed (SIGKILL) at any stage leaves the warehouse consistent; the next one finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.zap_runs.cli import main

from .conftest import small_world
from .warehouse import assert_matches_truth, duckdb_pipeline, warehouse_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stage", ["extract", "normalize", "load", "complete"])
def test_killed_sync_is_finished_by_the_next(make_simulator, past_clock, tmp_path, monkeypatch,
                                             stage):
    world = small_world(seed=91, clock=past_clock)
    sim = make_simulator(world)
    db = tmp_path / "c.duckdb"
    env = {"SOURCES__ZAP_RUNS__BASE_URL": sim.base_url, "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
           "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0", "DESTINATION__DUCKDB__CREDENTIALS": str(db),
           "SOURCES__ZAP_RUNS__PAGE_LIMIT": "50"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 0  # a first, complete sync
    past_clock.advance(timedelta(hours=6))
    killed = subprocess.run([sys.executable, "-m", "tests.crash_sync", stage], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    pipeline = duckdb_pipeline(db)
    stored = warehouse_runs(pipeline)  # raises on a duplicate run; steps must have parents
    assert stored, "the first sync's data is still there"
    with pipeline.sql_client() as client:
        orphans = client.execute_sql(
            f"select count(*) from {client.make_qualified_table_name('zap_runs__steps')} s where "
            f"not exists (select 1 from {client.make_qualified_table_name('zap_runs')} r "
            "where r._dlt_id = s._dlt_parent_id)")[0][0]
    assert orphans == 0, "no step rows without their run"
    past_clock.advance(timedelta(minutes=10))
    assert main([]) == 0
    assert_matches_truth(duckdb_pipeline(db), world.truth())
