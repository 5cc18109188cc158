"""The data model: typed columns, exact JSON in one column each, steps replaced, null starts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipelines.zap_runs.accounts.state import COLUMNS as STATE_COLUMNS
from pipelines.zap_runs.api.jsonvalues import json_bytes, json_loads

from .conftest import STEP_CHANGES, add_runs_whose_steps_change, small_world
from .warehouse import (
    assert_matches_truth,
    drop_datasets,
    duckdb_pipeline,
    postgres_pipeline,
    run_sync,
    warehouse_runs,
)

RUN_TYPES = {"account_id": "VARCHAR", "id": "VARCHAR", "zap_id": "BIGINT", "zap_title": "VARCHAR",
             "status": "VARCHAR",
             "start_time": "TIMESTAMP WITH TIME ZONE", "end_time": "TIMESTAMP WITH TIME ZONE",
             "data_in": "VARCHAR", "data_out": "VARCHAR",
             "fetched_at": "TIMESTAMP WITH TIME ZONE"}


def columns(pipeline, table):
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s", pipeline.dataset_name, table)
    return {name: kind.upper() for name, kind in rows}


STEP_TYPES = {"account_id": "VARCHAR", "run_id": "VARCHAR", "step_number": "BIGINT", "zap_id": "BIGINT",
              "status": "VARCHAR",
              "start_time": "TIMESTAMP WITH TIME ZONE"}


def test_tables_have_declared_types_and_no_variant_columns(make_simulator, tmp_path):
    sim = make_simulator()
    pipeline = duckdb_pipeline(tmp_path / "d.duckdb")
    run_sync(sim, pipeline)
    runs = columns(pipeline, "zap_runs")
    assert {k: v for k, v in runs.items() if not k.startswith("_dlt")} == RUN_TYPES
    steps = columns(pipeline, "zap_runs__steps")
    assert {k: v for k, v in steps.items() if not k.startswith("_dlt")} == STEP_TYPES
    with pipeline.sql_client() as client:
        tables = {r[0] for r in client.execute_sql(
            "select table_name from information_schema.tables where table_schema = %s",
            pipeline.dataset_name)}
    assert not {t for t in tables if t.startswith("zap_runs__") and t != "zap_runs__steps"}


def test_rows_the_source_yields_carry_no_dlt_columns(make_simulator, tmp_path):
    """Our code writes natural columns only; every `_dlt_*` column is dlt's own."""
    from pipelines.zap_runs import zap_runs_source

    sim = make_simulator(small_world(seed=53, days=1))
    source = zap_runs_source(access_token=sim.token, base_url=sim.base_url, requests_per_minute=0)
    keys, step_keys, state_keys = set(), set(), set()
    for row in source.resources["zap_runs"]:
        if "id" not in row:  # the account's state, for zap_runs_account_state
            state_keys.update(row)
            continue
        keys.update(row)
        for step in row["steps"]:
            step_keys.update(step)
    assert keys == set(RUN_TYPES) | {"steps"}
    assert step_keys == set(STEP_TYPES)
    assert state_keys == {column["name"] for column in STATE_COLUMNS}


def test_steps_are_dlts_nested_table_joined_on_natural_keys(make_simulator, tmp_path):
    """The steps table is dlt's own nested table of zap_runs (dlt made its links, which its
    merge uses to replace a changed run's steps in the same transaction), and analysts join it
    on run_id: every step row belongs to one run, numbered 1..n in the order of the run's list."""
    sim = make_simulator()
    pipeline = duckdb_pipeline(tmp_path / "n.duckdb")
    run_sync(sim, pipeline)
    table = pipeline.default_schema.tables["zap_runs__steps"]
    assert table["parent"] == "zap_runs"
    hints = {name: {k for k in ("root_key", "parent_key", "row_key") if col.get(k)}
             for name, col in table["columns"].items()}
    assert hints["_dlt_root_id"] == {"root_key"} and hints["_dlt_parent_id"] == {"parent_key"}
    with pipeline.sql_client() as client:
        runs = client.make_qualified_table_name("zap_runs")
        steps = client.make_qualified_table_name("zap_runs__steps")
        orphans, wrong_link, bad_order, total = client.execute_sql(
            f"select count(*) filter (where r.id is null),"
            f" count(*) filter (where r._dlt_id <> s._dlt_parent_id or r.zap_id <> s.zap_id"
            f"   or s.step_number <> s._dlt_list_idx + 1),"
            f" (select count(*) from (select run_id, max(step_number) as n, count(*) as c"
            f"   from {steps} group by 1) where n <> c), count(*)"
            f" from {steps} s left join {runs} r on r.id = s.run_id")[0]
    assert total > 0 and orphans == 0 and wrong_link == 0 and bad_order == 0


JSON_VALUES = [{"a": [1, {"b": None}]}, [1, "two", 3.5, True, None], "", "null", "{\"x\": 1}",
               "2024-10-16T06:29:10.360000Z", 0, -7, 3.25, 12345678901234567890, True, False,
               None, {}, [], "Zoë 🚀 日本", {"blob": "y" * 50_000}]


def json_text(run: dict, key: str) -> str | None:
    """What the sync stores for a decoded run's value: its JSON text, NULL when the key is absent."""
    return json_bytes(run[key]).decode() if key in run else None


@pytest.mark.parametrize("value", JSON_VALUES, ids=[f"v{i}" for i in range(len(JSON_VALUES))])
def test_every_json_value_round_trips_exactly(value):
    """From the response body to the stored text: the parser and writer keep the value as is."""
    body = json.dumps({"data": [{"id": "r", "data_in": value}]}, ensure_ascii=False).encode()
    run = json_loads(body)["data"][0]
    text = json_text(run, "data_in")
    assert json.loads(text) == value
    assert type(json.loads(text)) is type(value)
    assert json_text({}, "data_in") is None  # absent, not JSON null


def test_json_is_queryable_in_duckdb(make_simulator, tmp_path):
    sim = make_simulator()
    pipeline = duckdb_pipeline(tmp_path / "j.duckdb")
    run_sync(sim, pipeline)
    with pipeline.sql_client() as client:
        kinds = {r[0] for r in client.execute_sql(
            f"select distinct json_type(data_in::json) from "
            f"{client.make_qualified_table_name('zap_runs')} where data_in is not null")}
    assert {"OBJECT", "ARRAY", "VARCHAR", "NULL", "BOOLEAN"} <= kinds


@pytest.mark.postgres
def test_json_is_queryable_in_postgres(make_simulator, postgres_dsn, tmp_path):
    sim = make_simulator()
    pipeline = postgres_pipeline(postgres_dsn, f"zr_json_{tmp_path.name[-8:]}".lower())
    try:
        run_sync(sim, pipeline)
        with pipeline.sql_client() as client:
            kinds = {r[0] for r in client.execute_sql(
                f"select distinct jsonb_typeof(data_in::jsonb) from "
                f"{client.make_qualified_table_name('zap_runs')}")}
        assert {"object", "array", "string", "null", "boolean", "number"} <= kinds
    finally:
        drop_datasets(pipeline)


def test_changed_run_has_its_steps_replaced_not_duplicated(make_simulator, past_clock, tmp_path):
    """A run whose step list grows, shrinks, empties or becomes null has its step rows replaced
    exactly; so do the runs of the living world that changed meanwhile."""
    world = small_world(seed=51, clock=past_clock)
    changing = add_runs_whose_steps_change(world, past_clock.now() - timedelta(minutes=5))
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "c.duckdb")
    run_sync(sim, pipeline)
    before = warehouse_runs(pipeline)
    assert [len(before[i]["steps"]) for i in changing.values()] == [
        first for first, _ in STEP_CHANGES.values()]
    past_clock.advance(timedelta(hours=20))
    run_sync(sim, pipeline)
    after = warehouse_runs(pipeline)  # fails on step rows of another version or without a run
    assert [len(after[i]["steps"]) for i in changing.values()] == [
        then or 0 for _, then in STEP_CHANGES.values()]
    assert_matches_truth(pipeline, world.truth())


def test_runs_without_start_time_are_kept_then_updated(make_simulator, past_clock, tmp_path):
    world = small_world(seed=52, days=3, clock=past_clock, runs_per_day=1500)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "n.duckdb")
    run_sync(sim, pipeline)
    waiting = {i for i, r in warehouse_runs(pipeline).items() if r["start_time"] is None}
    assert waiting, "the world should have runs not started yet"
    past_clock.advance(timedelta(days=2))
    run_sync(sim, pipeline, lookback_hours=1)
    stored, truth = warehouse_runs(pipeline), world.truth()
    started = {i for i in waiting if truth[i]["start_time"] is not None}
    assert started
    for run_id in started:
        assert stored[run_id]["start_time"] is not None
        assert stored[run_id]["status"] == truth[run_id]["status"]
