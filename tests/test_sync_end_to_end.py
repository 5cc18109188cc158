"""The end-to-end property: syncs over a living world with faults leave the warehouse = truth."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from pipelines.simulator import Faults

from .conftest import small_world
from .warehouse import assert_matches_truth, drop_datasets, duckdb_pipeline, postgres_pipeline, run_sync

HOSTILE = dict(error_rate=0.05, html_error_rate=0.03, truncate_rate=0.03, short_page_rate=0.2,
               drop_next_rate=0.2, max_limit=37, fault_retry_after=0)


def living_syncs(sim, new_pipeline, clock, steps, lose_local_state=False):
    """Sync, step the world forward, sync again; optionally lose the local pipeline folder
    between syncs, as a fresh container or a wiped runner would (a new process each time)."""
    pipeline = new_pipeline()
    results = [run_sync(sim, pipeline)]
    for hours in steps:
        clock.advance(timedelta(hours=hours))
        if lose_local_state:
            shutil.rmtree(pipeline.working_dir)
            pipeline = new_pipeline()
        results.append(run_sync(sim, pipeline))
    return pipeline, results


@pytest.mark.parametrize("shape,order", [("array", "desc"), ("object", "shuffled"),
                                         ("object", "asc")])
def test_warehouse_equals_truth_after_syncs_with_faults(make_simulator, past_clock, tmp_path,
                                                        shape, order):
    world = small_world(clock=past_clock)
    sim = make_simulator(world, faults=Faults(body_shape=shape, order=order, **HOSTILE))
    pipeline, results = living_syncs(sim, lambda: duckdb_pipeline(tmp_path / "w.duckdb"),
                                     past_clock, [3, 14, 0.5, 20])
    assert_matches_truth(pipeline, world.truth())
    assert sum(r.retries for r in results) > 0, "the faults should have forced retries"
    assert results[0].runs_new == results[0].runs_fetched > 0


def test_lost_local_pipeline_folder_costs_nothing(make_simulator, past_clock, tmp_path):
    world = small_world(seed=11, clock=past_clock)
    sim = make_simulator(world, faults=Faults(**HOSTILE))
    pipeline, results = living_syncs(sim, lambda: duckdb_pipeline(tmp_path / "w.duckdb"),
                                     past_clock, [6, 18], lose_local_state=True)
    assert_matches_truth(pipeline, world.truth())
    first = results[0]
    # The cursor came back from the warehouse: later syncs read a day's window, not 30 days.
    assert all(r.window_from is not None for r in results[1:])
    assert results[-1].runs_fetched < first.runs_fetched / 2


@pytest.mark.postgres
def test_same_sync_into_postgres(make_simulator, past_clock, postgres_dsn, tmp_path):
    world = small_world(seed=5, clock=past_clock)
    sim = make_simulator(world, faults=Faults(body_shape="object", **HOSTILE))
    dataset = f"zr_test_{tmp_path.name[-12:].replace('-', '_')}".lower()
    pipeline = postgres_pipeline(postgres_dsn, dataset)
    try:
        pipeline, _ = living_syncs(sim, lambda: postgres_pipeline(postgres_dsn, dataset),
                                   past_clock, [5, 16], lose_local_state=True)
        assert_matches_truth(pipeline, world.truth())
    finally:
        drop_datasets(pipeline)
