"""The gap of dlt's merge that warehouse/merge_gap.py closes, pinned: a copy job that dlt runs again after
its commit stages its root rows twice, and dlt's merge inserts both (its nested rows once). When
a dlt release fixes it, `test_dlt_still_inserts_a_doubly_staged_root_row_twice` fails: then
merge_gap.py and this file can go (docs/dlt-gaps.md)."""

from __future__ import annotations

from dlt.common.destination.exceptions import DestinationTransientException

from pipelines.zap_runs.warehouse.merge_gap import drop_rows_of_retried_copies

from .conftest import small_world
from .crash_sync import lose_copy_acknowledgement
from .warehouse import assert_matches_truth, duckdb_pipeline, run_sync


def doubled(pipeline, table: str) -> int:
    with pipeline.sql_client() as client:
        [(extra,)] = client.execute_sql(
            f"select count(*) - count(distinct _dlt_id) from {client.make_qualified_table_name(table)}")
    return extra


def copy_committed_then_reply_lost(monkeypatch) -> None:
    """zap_runs' first copy job commits, then fails as if its COMMIT's reply were lost: dlt
    retries it in the same load."""
    def lose(_job):
        raise DestinationTransientException("the reply to COMMIT was lost")
    lose_copy_acknowledgement(monkeypatch.setattr, lose)


def test_dlt_still_inserts_a_doubly_staged_root_row_twice(make_simulator, past_clock, tmp_path,
                                                          monkeypatch):
    world = small_world(seed=98, days=2, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "gap.duckdb")
    copy_committed_then_reply_lost(monkeypatch)
    monkeypatch.setattr("pipelines.zap_runs.warehouse.pipeline.drop_rows_of_retried_copies",
                        lambda *_: 0)  # dlt's behaviour alone
    result = run_sync(sim, pipeline)
    [package] = result.load_info.load_packages
    retried = [job.job_file_info.table_name for job in package.jobs["completed_jobs"]
               if job.job_file_info.retry_count]
    assert retried == ["zap_runs"], "one copy job ran twice"
    runs = len(world.truth())
    assert doubled(pipeline, "zap_runs") == runs, "dlt's merge inserted both staged copies"
    assert doubled(pipeline, "zap_runs__steps") == 0, "nested rows are deduplicated by dlt"
    assert drop_rows_of_retried_copies(pipeline, result.load_info) == runs
    assert_matches_truth(pipeline, world.truth())
    assert drop_rows_of_retried_copies(pipeline, result.load_info) == 0


def test_a_sync_whose_copy_job_dlt_retried_keeps_each_run_once(make_simulator, past_clock,
                                                               tmp_path, monkeypatch):
    world = small_world(seed=97, days=2, clock=past_clock)
    pipeline = duckdb_pipeline(tmp_path / "once.duckdb")
    copy_committed_then_reply_lost(monkeypatch)
    run_sync(make_simulator(world), pipeline)
    assert doubled(pipeline, "zap_runs") == 0
    assert_matches_truth(pipeline, world.truth())
