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
from .warehouse import (
    assert_matches_truth,
    drop_datasets,
    duckdb_pipeline,
    postgres_pipeline,
    run_sync,
    warehouse_runs,
)

ROOT = Path(__file__).resolve().parents[1]


def killed_sync(stage: str, cwd: Path, args: tuple[str, ...] | list[str] = ()) -> None:
    killed = subprocess.run([sys.executable, "-m", "tests.crash_sync", stage, *args], cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


def configure(sim, db: Path, monkeypatch) -> None:
    env = {"SOURCES__ZAP_RUNS__BASE_URL": sim.base_url, "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
           "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0", "DESTINATION__DUCKDB__CREDENTIALS": str(db),
           "SOURCES__ZAP_RUNS__PAGE_LIMIT": "50"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)


# committed: a load job's rows are in the destination but dlt has not recorded the job, so the
# resumed load writes them again (a merge would take both copies from staging).
@pytest.mark.parametrize("stage", ["extract", "normalize", "load", "committed", "complete"])
def test_killed_sync_is_finished_by_the_next(make_simulator, past_clock, tmp_path, monkeypatch,
                                             stage):
    world = small_world(seed=91, clock=past_clock)
    sim = make_simulator(world)
    db = tmp_path / "c.duckdb"
    configure(sim, db, monkeypatch)
    assert main([]) == 0  # a first, complete sync
    past_clock.advance(timedelta(hours=6))
    killed_sync(stage, tmp_path)
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


@pytest.mark.parametrize("stage", ["load", "committed"])
def test_killed_first_sync_is_finished_by_the_next(make_simulator, past_clock, tmp_path,
                                                   monkeypatch, stage):
    """The first sync appends rather than merges: a resumed load still leaves each run once."""
    world = small_world(seed=92, clock=past_clock)
    sim = make_simulator(world)
    db = tmp_path / "f.duckdb"
    configure(sim, db, monkeypatch)
    killed_sync(stage, tmp_path)
    past_clock.advance(timedelta(minutes=10))
    assert main([]) == 0
    assert_matches_truth(duckdb_pipeline(db), world.truth())


@pytest.mark.postgres
@pytest.mark.parametrize("first", [True, False], ids=["first-sync", "later-sync"])
def test_killed_sync_into_postgres_is_finished_by_the_next(make_simulator, past_clock, tmp_path,
                                                           monkeypatch, postgres_dsn, first):
    """PostgreSQL as well: a load job replayed after a crash neither blocks later syncs nor
    leaves a run twice, whether the load appended (a first sync) or merged."""
    world = small_world(seed=94, clock=past_clock)
    sim = make_simulator(world)
    configure(sim, tmp_path / "unused.duckdb", monkeypatch)
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_dsn)
    dataset = f"zr_crash_{tmp_path.name[-8:]}".lower()
    args = ["--destination", "postgres", "--dataset", dataset]
    try:
        if not first:
            assert main(args) == 0
            past_clock.advance(timedelta(hours=6))
        killed_sync("committed", tmp_path, args)
        past_clock.advance(timedelta(minutes=10))
        assert main(args) == 0
        assert_matches_truth(postgres_pipeline(postgres_dsn, dataset), world.truth())
    finally:
        drop_datasets(postgres_pipeline(postgres_dsn, dataset))


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_rows_a_resumed_load_wrote_twice_are_dropped(make_simulator, past_clock, tmp_path, request,
                                                      destination):
    """What a replayed load job leaves (each row of its load twice) is undone, and rows of other
    loads are not touched."""
    from pipelines.zap_runs.recovery import drop_replayed_rows

    world = small_world(seed=93, clock=past_clock)
    sim = make_simulator(world)
    if destination == "duckdb":
        pipeline = duckdb_pipeline(tmp_path / "r.duckdb")
    else:
        dataset = f"zr_replay_{tmp_path.name[-8:]}".lower()
        pipeline = postgres_pipeline(request.getfixturevalue("postgres_dsn"), dataset)
    try:
        run_sync(sim, pipeline)
        past_clock.advance(timedelta(hours=6))
        run_sync(sim, pipeline)
        with pipeline.sql_client() as client:
            runs = client.make_qualified_table_name("zap_runs")
            steps = client.make_qualified_table_name("zap_runs__steps")
            [(load_id,)] = client.execute_sql(f"select max(_dlt_load_id) from {runs}")
            own_runs = f"from {runs} where _dlt_load_id = '{load_id}'"
            own_steps = f"from {steps} where _dlt_root_id in (select _dlt_id {own_runs})"
            [(doubled,)] = client.execute_sql(f"select count(*) {own_runs}")
            [(doubled_steps,)] = client.execute_sql(f"select count(*) {own_steps}")
            client.execute_sql(f"insert into {steps} select * {own_steps}")
            client.execute_sql(f"insert into {runs} select * {own_runs}")
        assert doubled and doubled_steps
        assert drop_replayed_rows(pipeline, load_id) == doubled + doubled_steps
        assert_matches_truth(pipeline, world.truth())
        assert drop_replayed_rows(pipeline, load_id) == 0
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)
