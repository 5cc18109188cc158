"""SQL models: grains, equality with an independent Python computation, edge cases, dialects."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest
import sqlglot

from pipelines.simulator import World, WorldConfig
from pipelines.simulator.lifecycle import Run, iso
from pipelines.zap_runs.models import build_models, compile_model, load_models

from . import model_truth as truth_of
from .conftest import small_world
from .warehouse import drop_datasets, duckdb_pipeline, postgres_pipeline, run_sync

GRAINS = {"zap_error_rates_daily": ("zap_id", "day"), "zap_error_rates_hourly": ("zap_id", "hour"),
          "zap_health": ("zap_id",), "zap_step_failures": ("zap_id", "step_number"),
          "zap_run_durations": ("zap_id", "day"), "stg_zap_runs": ("run_id",),
          "stg_zap_run_steps": ("run_id", "step_number")}


def query(pipeline, sql):
    with pipeline.sql_client() as client:
        client.execute_sql("set TimeZone = 'UTC'" if pipeline.destination.destination_name ==
                           "duckdb" else "set time zone 'UTC'")
        with client.execute_query(sql) as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table(pipeline, name):
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(name)
    return query(pipeline, f"select * from {qualified}")


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def assert_grains(pipeline):
    for name, key in GRAINS.items():
        rows = table(pipeline, name)
        keys = [tuple(r[k] for k in key) for r in rows]
        assert all(None not in k for k in keys), f"{name}: null key"
        assert len(keys) == len(set(keys)), f"{name}: key {key} not unique"


def assert_marts_match(pipeline, truth):
    daily = {(r["zap_id"], r["day"]): r for r in table(pipeline, "zap_error_rates_daily")}
    expected = truth_of.daily(truth)
    assert set(daily) == set(expected)
    for key, want in expected.items():
        got = daily[key]
        for column, value in want.items():
            assert close(got[column], value), (key, column, got[column], value)

    durations = {(r["zap_id"], r["day"]): r for r in table(pipeline, "zap_run_durations")}
    expected = truth_of.durations(truth)
    assert set(durations) == set(expected)
    for key, want in expected.items():
        for column, value in want.items():
            assert math.isclose(float(durations[key][column]), value, rel_tol=1e-6, abs_tol=1e-5), \
                (key, column)

    steps = {(r["zap_id"], r["step_number"]): r for r in table(pipeline, "zap_step_failures")}
    expected = truth_of.step_failures(truth)
    assert set(steps) == set(expected)
    for key, want in expected.items():
        for column, value in want.items():
            assert close(steps[key][column], value), (key, column)

    health = {r["zap_id"]: r for r in table(pipeline, "zap_health")}
    as_of = next(iter(health.values()))["as_of"]
    expected = truth_of.health(truth, as_of)
    assert set(health) == set(expected)
    for zap_id, want in expected.items():
        got = health[zap_id]
        for column in ("last_run_at", "last_success_at", "current_failure_streak"):
            assert got[column] == want[column], (zap_id, column, got[column], want[column])
        for column in ("error_rate_24h", "error_rate_7d", "error_rate_30d"):
            assert close(got[column], want[column]), (zap_id, column)
        change = None if want["error_rate_24h"] is None or want["prev_24h"] is None else \
            want["error_rate_24h"] - want["prev_24h"]
        assert close(got["error_rate_24h_change"], change)


def test_marts_equal_python_over_a_simulated_world(make_simulator, past_clock, tmp_path):
    world = small_world(seed=61, days=20, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "m.duckdb")
    run_sync(sim, pipeline, since=iso(past_clock.now() - timedelta(days=21)))
    build_models(pipeline)
    assert_grains(pipeline)
    assert_marts_match(pipeline, world.truth())


@pytest.mark.postgres
def test_marts_on_postgres(make_simulator, past_clock, postgres_dsn, tmp_path):
    world = small_world(seed=62, clock=past_clock)
    sim = make_simulator(world)
    pipeline = postgres_pipeline(postgres_dsn, f"zr_models_{tmp_path.name[-8:]}".lower())
    try:
        run_sync(sim, pipeline)
        build_models(pipeline)
        build_models(pipeline)  # rebuilding over existing relations works
        assert_grains(pipeline)
        assert_marts_match(pipeline, world.truth())
    finally:
        drop_datasets(pipeline)


def _run(zap_id, status, start, steps, end=None, title="Edge"):
    return Run(id=str(uuid.uuid4()), zap_id=zap_id, zap_title=title, occurred_at=start,
               status=status, start_time=None if status == "held" else start,
               end_time=end, steps=steps, data_in=None, data_out=None)


def test_edge_cases(make_simulator, past_clock, tmp_path):
    world = World(WorldConfig(seed=1, zaps=1, runs_per_day=0, history_days=2), past_clock)
    now = past_clock.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ok = [{"status": "success", "start_time": None}]
    world.add(_run(1, "filtered", midnight - timedelta(hours=23), ok, title="never finishes"))
    world.add(_run(2, "error", midnight - timedelta(microseconds=1000),
                   [{"status": "success", "start_time": None}, {"status": "error", "start_time": None}],
                   end=midnight + timedelta(seconds=3)))
    world.add(_run(2, "success", midnight, ok, end=midnight + timedelta(seconds=1)))
    world.add(_run(2, "brand_new_status", midnight + timedelta(minutes=1), ok))
    world.add(_run(3, "held", midnight + timedelta(minutes=2), None))
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "e.duckdb")
    run_sync(sim, pipeline)
    build_models(pipeline)
    assert_grains(pipeline)
    truth = world.truth()
    assert_marts_match(pipeline, truth)
    daily = {(r["zap_id"], r["day"]): r for r in table(pipeline, "zap_error_rates_daily")}
    assert daily[(1, (midnight - timedelta(days=1)).date())]["error_rate"] is None
    assert daily[(2, (midnight - timedelta(days=1)).date())]["count_failed"] == 1  # 23:59:59.999
    assert daily[(2, midnight.date())]["count_unknown"] == 1
    assert not [k for k in daily if k[0] == 3], "a run not started has no day"
    health = {r["zap_id"]: r for r in table(pipeline, "zap_health")}
    assert health[3]["last_run_at"] is None and health[3]["error_rate_30d"] is None
    assert health[2]["current_failure_streak"] == 0


def test_empty_warehouse_builds_empty_marts(make_simulator, past_clock, tmp_path):
    world = World(WorldConfig(seed=1, zaps=1, runs_per_day=0, history_days=1), past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "empty.duckdb")
    run_sync(sim, pipeline)
    build_models(pipeline)
    for name in GRAINS:
        assert table(pipeline, name) == []
    world.add(_run(9, "error", past_clock.now() - timedelta(hours=1),
                   [{"status": "error", "start_time": None}]))
    run_sync(sim, pipeline)  # the stand-in steps table takes dlt's first real steps
    build_models(pipeline)
    assert_marts_match(pipeline, world.truth())


@pytest.mark.parametrize("model", load_models(), ids=lambda m: m.name)
def test_every_model_compiles_for_bigquery(model):
    sql = compile_model(model, "bigquery", "analytics")
    parsed = sqlglot.parse_one(sql, read="bigquery")
    assert parsed is not None and "analytics." in sql
    assert "::" not in sql


def test_every_model_file_states_its_grain():
    for model in load_models():
        assert model.sql.lstrip().startswith("-- grain:"), model.name


def test_models_command(make_simulator, monkeypatch, capsys):
    from pipelines.zap_runs.cli import main

    assert main(["models"]) == 1
    assert "run a sync first" in capsys.readouterr().err.strip().splitlines()[-1]
    sim = make_simulator()
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", sim.base_url)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", sim.token)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE", "0")
    assert main([]) == 0
    assert "models     9 rebuilt" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert "built 9 models" in capsys.readouterr().out
