"""A lake on the filesystem destination (Delta tables in a file:// bucket) equals the truth."""

from __future__ import annotations

import json
from datetime import timedelta

import dlt
import duckdb
import pytest
from dlt.common.libs.deltalake import get_delta_tables

from pipelines.simulator import Faults
from pipelines.zap_runs.warehouse.destinations import drop_stale_steps, prepare_source
from pipelines.zap_runs.warehouse.pipeline import make_pipeline

from .conftest import add_runs_whose_steps_change, small_world
from .warehouse import _time, exact, normalise, run_sync

FAULTS = dict(short_page_rate=0.2, drop_next_rate=0.2, max_limit=37, error_rate=0.03,
              fault_retry_after=0)


@pytest.fixture
def lake_pipeline(tmp_path, monkeypatch):
    """Pipelines into the filesystem destination on a file:// bucket under tmp_path, configured
    as a user would (Delta is the default table format)."""
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", (tmp_path / "lake").as_uri())

    def factory(name: str = "zap_runs_lake") -> dlt.Pipeline:
        return make_pipeline("filesystem", "zapier", pipeline_name=name)

    return factory


def lake_tables(pipeline: dlt.Pipeline) -> duckdb.DuckDBPyConnection:
    """The runs and steps Delta tables as DuckDB views over their Arrow data (read by deltalake,
    as any Delta reader would: only the files of the current table version)."""
    tables = get_delta_tables(pipeline, "zap_runs", "zap_runs__steps")
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table.to_pyarrow_table())
    return con


def lake_runs(pipeline: dlt.Pipeline) -> dict[str, dict]:
    """Every run in the lake, rebuilt from its two tables by natural keys, checking on the way
    that each step row belongs to its run's current version and steps count 1..n."""
    con = lake_tables(pipeline)
    rows = con.execute("select id, zap_id, zap_title, status, start_time, end_time, data_in, "
                       "data_out, _dlt_id from zap_runs").fetchall()
    steps = con.execute("select run_id, step_number, status, start_time, _dlt_parent_id "
                        "from zap_runs__steps order by run_id, step_number").fetchall()
    by_run: dict[str, list] = {}
    links: dict[str, set] = {}
    for run_id, number, status, start, parent in steps:
        found = by_run.setdefault(run_id, [])
        assert number == len(found) + 1, f"run {run_id}: step {number} follows {len(found)} steps"
        found.append((status, _time(start)))
        links.setdefault(run_id, set()).add(parent)
    out: dict[str, dict] = {}
    for rid, zap_id, title, status, start, end, data_in, data_out, dlt_id in rows:
        assert rid not in out, f"run {rid} is in the lake twice"
        assert links.get(rid, {dlt_id}) == {dlt_id}, f"run {rid} holds steps of another version"
        out[rid] = {
            "id": rid, "zap_id": int(zap_id), "zap_title": title, "status": status,
            "start_time": _time(start), "end_time": _time(end), "steps": by_run.pop(rid, []),
            "data_in": exact(json.loads(data_in)) if data_in is not None else None,
            "data_out": exact(json.loads(data_out)) if data_out is not None else None,
        }
    assert not by_run, f"step rows of {len(by_run)} runs not in the runs table"
    return out


def assert_lake_matches_truth(pipeline: dlt.Pipeline, truth: dict[str, dict]) -> None:
    stored = lake_runs(pipeline)
    assert sorted(stored) == sorted(truth), \
        f"{len(set(truth) - set(stored))} runs missing, {len(set(stored) - set(truth))} extra"
    stale = [rid for rid, run in truth.items() if normalise(run) != stored[rid]]
    assert not stale, (f"{len(stale)} runs differ; e.g. {stale[0]}:\n truth {normalise(truth[stale[0]])}"
                       f"\n  held {stored[stale[0]]}")


# Needs the sync to call destinations.prepare_source before extracting and drop_stale_steps
# after loading (pipeline.sync), and the runs as dict rows with a nested `steps` list.
def test_lake_equals_truth_after_syncs_of_a_living_world(make_simulator, past_clock, lake_pipeline):
    # A busy day synced often: runs caught open (throttled, pending) settle with fewer steps.
    world = small_world(seed=4, days=1, runs_per_day=4000, clock=past_clock)
    add_runs_whose_steps_change(world, past_clock.now() - timedelta(minutes=5))
    sim = make_simulator(world, faults=Faults(body_shape="object", **FAULTS))
    pipeline = lake_pipeline()
    results = [run_sync(sim, pipeline)]
    for hours in (0.5, 0.5, 1, 2):
        past_clock.advance(timedelta(hours=hours))
        results.append(run_sync(sim, pipeline))
        assert_lake_matches_truth(pipeline, world.truth())
    assert sum(r.retries for r in results) > 0, "the faults should have forced retries"
    steps = get_delta_tables(pipeline, "zap_runs__steps")["zap_runs__steps"]
    assert "DELETE" in {commit["operation"] for commit in steps.history()}, \
        "runs whose step lists shrank (Delay steps, throttled runs that failed) were merged"


def test_lost_local_state_and_a_new_process_keep_the_lake_exact(make_simulator, past_clock,
                                                                  lake_pipeline):
    world = small_world(seed=29, clock=past_clock)
    sim = make_simulator(world)
    pipeline = lake_pipeline()
    run_sync(sim, pipeline)
    past_clock.advance(timedelta(hours=12))
    pipeline.drop()  # the pipeline folder is gone: state comes back from the bucket
    pipeline = lake_pipeline()
    second = run_sync(sim, pipeline)
    assert second.window_from is not None, "the cursor came back from the lake"
    assert_lake_matches_truth(pipeline, world.truth())


@dlt.source(name="zap_runs", max_table_nesting=1)
def toy_source(rows: list[dict]):
    """Runs shaped as the sync yields them, for what the simulator's world rarely does."""

    @dlt.resource(name="zap_runs", primary_key="id",
                  write_disposition={"disposition": "merge", "strategy": "delete-insert"})
    def zap_runs():
        yield rows

    return zap_runs


def toy_sync(pipeline: dlt.Pipeline, rows: list[dict]) -> None:
    source = toy_source(rows)
    prepare_source(source, pipeline)
    pipeline.run(source)
    drop_stale_steps(pipeline)


def toy_run(run_id: str, status: str, steps: list[str] | None) -> dict:
    return {"id": run_id, "status": status,
            "steps": None if steps is None else [
                {"run_id": run_id, "step_number": n, "status": s} for n, s in enumerate(steps, 1)]}


def lake_steps(pipeline: dlt.Pipeline) -> dict[str, list[str]]:
    con = lake_tables(pipeline)
    runs = dict(con.execute("select _dlt_id, id from zap_runs").fetchall())
    out: dict[str, list[str]] = {}
    for parent, status in con.execute("select _dlt_parent_id, status from zap_runs__steps "
                                      "order by _dlt_parent_id, _dlt_list_idx").fetchall():
        out.setdefault(runs[parent], []).append(status)
    return out


def test_a_changed_runs_steps_are_replaced_exactly_shrunk_emptied_or_null(lake_pipeline):
    pipeline = lake_pipeline("toy_lake")
    toy_sync(pipeline, [toy_run("a", "delayed", ["success", "success", "filtered"]),
                        toy_run("b", "scheduled", ["success", "error"]),
                        toy_run("c", "throttled", ["success"]),
                        toy_run("d", "success", ["success", "success"])])
    toy_sync(pipeline, [toy_run("a", "error", ["error"]),  # shrunk
                        toy_run("b", "success", []),  # emptied
                        toy_run("c", "success", None),  # null
                        toy_run("e", "pending", ["success"]),
                        toy_run("e", "pending", ["success"])])  # read twice in one sync
    assert lake_steps(pipeline) == {"a": ["error"], "d": ["success", "success"], "e": ["success"]}
    toy_sync(pipeline, [toy_run("b", "success", ["success", "success", "success"]),
                        toy_run("e", "error", [])])
    assert lake_steps(pipeline) == {"a": ["error"], "b": ["success"] * 3, "d": ["success"] * 2}
    statuses = dict(lake_tables(pipeline).execute("select id, status from zap_runs").fetchall())
    assert statuses == {"a": "error", "b": "success", "c": "success", "d": "success", "e": "error"}


def test_stale_steps_left_by_a_killed_sync_are_dropped_by_the_next(lake_pipeline):
    pipeline = lake_pipeline("toy_killed")
    toy_sync(pipeline, [toy_run("a", "delayed", ["success", "filtered", "filtered"])])
    source = toy_source([toy_run("a", "error", ["error"])])
    prepare_source(source, pipeline)
    pipeline.run(source)  # killed here: loaded, but its stale steps not yet dropped
    assert lake_steps(pipeline) == {"a": ["error", "filtered", "filtered"]}
    toy_sync(pipeline, [toy_run("z", "success", ["success"])])
    assert lake_steps(pipeline) == {"a": ["error"], "z": ["success"]}


@pytest.mark.parametrize("fmt", ["parquet", "iceberg"])
def test_formats_that_cannot_merge_are_refused_before_reading(fmt, lake_pipeline, monkeypatch):
    monkeypatch.setenv("SOURCES__ZAP_RUNS__TABLE_FORMAT", fmt)
    pipeline = lake_pipeline(f"toy_{fmt}")
    from pipelines.zap_runs.common.errors import ConfigError

    with pytest.raises(ConfigError, match='table_format = "delta"'):
        prepare_source(toy_source([toy_run("a", "success", [])]), pipeline)


def test_accounts_with_the_same_run_ids_keep_their_own_rows_in_the_lake(past_clock, lake_pipeline):
    from pipelines.simulator import Simulator
    from pipelines.zap_runs.warehouse.pipeline import sync

    from .warehouse import FAST

    worlds = {name: small_world(seed=4, days=1, runs_per_day=300, clock=past_clock)
              for name in ("twin-a", "twin-b")}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    pipeline = lake_pipeline("lake_accounts")
    accounts = [{"name": n, "access_token": sim.accounts[n].token} for n in worlds]
    try:
        for hours in (0, 2, 3):
            past_clock.advance(timedelta(hours=hours))
            result = sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
            assert [a.result for a in result.accounts] == ["success", "success"]
        truth = worlds["twin-a"].truth()
        con = lake_tables(pipeline)
        held = con.execute("select account_id, count(*), count(distinct id) from zap_runs "
                           "group by account_id order by account_id").fetchall()
        assert held == [("twin-a", len(truth), len(truth)), ("twin-b", len(truth), len(truth))]
        statuses = con.execute("select account_id, id, status from zap_runs").fetchall()
        assert {(a, rid, status) for a, rid, status in statuses} == {
            (a, rid, run["status"]) for a in worlds for rid, run in truth.items()}
        steps = dict(con.execute("select account_id, count(*) from zap_runs__steps "
                                 "group by account_id").fetchall())
        assert steps["twin-a"] == steps["twin-b"] == sum(len(r["steps"] or []) for r in truth.values())
    finally:
        sim.stop()


def test_a_lake_written_before_accounts_is_refused_not_merged_twice(lake_pipeline):
    from pipelines.zap_runs.common.errors import ConfigError
    from pipelines.zap_runs.warehouse.upgrade import add_account_id

    pipeline = lake_pipeline("toy_old")
    toy_sync(pipeline, [toy_run("a", "success", ["success"])])  # rows without account_id
    with pytest.raises(ConfigError, match="written before accounts existed"):
        add_account_id(pipeline, "default")
