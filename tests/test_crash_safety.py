"""A sync killed (SIGKILL) at any stage shows a reader nothing half-loaded; the next one aborts
that load and reads its runs again (warehouse/recovery.py).

Both tables are merged: their load jobs copy into the staging dataset, then one merge job
moves both into the dataset in one transaction. Killed before that merge, a load leaves the
dataset exactly as it was (no tables' rows at all on a first sync).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipelines.zap_runs.cli.main import main

from .conftest import small_world
from .failed_load import configure, drop_if_there, killed_sync, postgres_cli, stray_steps, visible_runs
from .warehouse import (
    assert_matches_truth,
    duckdb_pipeline,
    warehouse_runs,
)

# The staging copy jobs' stages of crash_sync: one table's rows committed, or both, and dlt
# has recorded neither, so the next sync runs them again.
COPY_STAGES = ["runs_committed", "steps_committed", "staged"]


@pytest.mark.parametrize("stage", COPY_STAGES)
@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sync_killed_between_copy_jobs_shows_nothing_and_is_read_again(
        make_simulator, past_clock, tmp_path, monkeypatch, request, destination, stage):
    """Killed after a staging copy job committed, a first sync shows no run and no step, a
    later one exactly what the sync before it left; the next sync aborts the load, reads its
    runs again and leaves no run twice."""
    world = small_world(seed=94, days=2, clock=past_clock)
    sim = make_simulator(world)
    configure(sim, tmp_path / "k.duckdb", monkeypatch)
    if destination == "postgres":
        args, pipeline = postgres_cli(request, monkeypatch, "crash")
    else:
        args = []
    try:
        killed_sync(stage, tmp_path, args)  # the first sync
        if destination == "duckdb":  # opened once the sync has created the file
            pipeline = duckdb_pipeline(tmp_path / "k.duckdb")
        assert visible_runs(pipeline) == {}, "nothing of the killed first sync is visible"
        past_clock.advance(timedelta(minutes=10))
        assert main(args) == 0
        assert_matches_truth(pipeline, world.truth())
        before = warehouse_runs(pipeline)
        past_clock.advance(timedelta(hours=6))
        killed_sync(stage, tmp_path, args)  # a later sync
        assert warehouse_runs(pipeline) == before, "nothing of the killed later sync is visible"
        assert stray_steps(pipeline) == (0, 0)
        past_clock.advance(timedelta(minutes=10))
        assert main(args) == 0
        assert_matches_truth(pipeline, world.truth())
    finally:
        if destination == "postgres":
            drop_if_there(pipeline)


@pytest.mark.parametrize("stage", ["extract", "normalize", "complete"])
def test_killed_sync_is_made_good_by_the_next(make_simulator, past_clock, tmp_path, monkeypatch,
                                             stage):
    """Killed while fetching, before normalizing, or after its merge but before dlt marked
    the load complete: what a reader sees holds together, and the next sync makes it good."""
    world = small_world(seed=91, days=2, clock=past_clock)
    sim = make_simulator(world)
    db = tmp_path / "c.duckdb"
    configure(sim, db, monkeypatch)
    assert main([]) == 0  # a first, complete sync
    before = warehouse_runs(duckdb_pipeline(db))
    past_clock.advance(timedelta(hours=6))
    killed_sync(stage, tmp_path)
    pipeline = duckdb_pipeline(db)
    stored = warehouse_runs(pipeline)  # raises on a duplicate run or a step of another version
    assert stray_steps(pipeline) == (0, 0), "every step row belongs to its run's current version"
    if stage == "complete":  # the merge committed: the new versions are there, each once
        assert stored.keys() >= before.keys()
    else:
        assert stored == before
    past_clock.advance(timedelta(minutes=10))
    assert main([]) == 0
    assert_matches_truth(duckdb_pipeline(db), world.truth())


def test_a_load_killed_with_part_of_a_table_committed_is_read_again_never_twice(
        make_simulator, past_clock, tmp_path, monkeypatch):
    """zap_runs loads from several files: one copy job is recorded, the next commits unrecorded
    and the sync is killed. The next sync aborts that load (no job of it runs again, so nothing
    is staged twice), reads its runs again, and the warehouse holds every run once."""
    world = small_world(seed=95, days=2, clock=past_clock)
    sim = make_simulator(world)
    db = tmp_path / "t.duckdb"
    configure(sim, db, monkeypatch)
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "150")  # several files a table
    assert main([]) == 0
    before = warehouse_runs(duckdb_pipeline(db))
    past_clock.advance(timedelta(hours=6))
    # Six hours hold 40 to 150 runs, by the hour of the day the world's clock is at (it follows
    # today's date): files of 20 give zap_runs several whatever the hour.
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "20")
    killed_sync("runs_partly_committed", tmp_path)
    assert warehouse_runs(duckdb_pipeline(db)) == before
    assert main([]) == 0
    assert_matches_truth(duckdb_pipeline(db), world.truth())
