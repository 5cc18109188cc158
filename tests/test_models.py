"""SQL models: grains, equality with an independent Python computation, edge cases, dialects,
and accounts: two accounts whose zap and run ids collide never mix."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlglot

from pipelines.simulator import ManualClock, World, WorldConfig
from pipelines.simulator.lifecycle import Run, iso
from pipelines.zap_runs.warehouse import synclog
from pipelines.zap_runs.warehouse.models import build_models, compile_model, load_models

from . import model_truth as truth_of
from .conftest import small_world
from .raw_tables import colliding_truths, error_rate_truths, write_raw_tables
from .warehouse import drop_datasets, duckdb_pipeline, pipeline_for, postgres_pipeline, run_sync

ACCOUNT = "default"  # what a sync of one account writes when its name is not configured
GRAINS = {"zap_error_rates_daily": ("account_id", "zap_id", "day"),
          "zap_error_rates_hourly": ("account_id", "zap_id", "hour"),
          "zap_health": ("account_id", "zap_id"),
          "zap_step_failures": ("account_id", "zap_id", "step_number"),
          "zap_run_durations": ("account_id", "zap_id", "day"),
          "stg_zap_runs": ("account_id", "run_id"),
          "stg_zap_run_steps": ("account_id", "run_id", "step_number"),
          "account_health": ("account_id",),
          "partner_step_failures": ("zap_title", "step_number"),
          "zap_incidents": ("account_id", "zap_id", "opened_at")}


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


def keyed(pipeline, name):
    key = GRAINS[name]
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in table(pipeline, name)}


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


def assert_rows_match(name, got, expected, approx=close):
    """The same keys; per column numbers `approx` equal (None only where None), others equal."""
    assert set(got) == set(expected), (name, sorted(set(got) ^ set(expected), key=str)[:5])
    for key, want in expected.items():
        for column, value in want.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            ok = approx(got[key][column], value) if number or value is None else \
                got[key][column] == value
            assert ok, (name, key, column, got[key][column], value)


def sync_log_rows(pipeline):
    """The sync log's rows as account_health reads them ([] when there is no log)."""
    try:
        return table(pipeline, synclog.TABLE)
    except Exception:  # noqa: BLE001 - no log table
        return []


def assert_marts_match(pipeline, truths):
    """Every mart equals its Python computation from the truths (account -> truth) and, for
    account_health, the sync log's rows."""
    assert_rows_match("zap_error_rates_daily", keyed(pipeline, "zap_error_rates_daily"),
                      truth_of.daily(truths))
    assert_rows_match("zap_run_durations", keyed(pipeline, "zap_run_durations"),
                      truth_of.durations(truths), approx=lambda a, b: math.isclose(
                          float(a), b, rel_tol=1e-6, abs_tol=1e-5))
    assert_rows_match("zap_step_failures", keyed(pipeline, "zap_step_failures"),
                      truth_of.step_failures(truths))

    health = keyed(pipeline, "zap_health")
    as_of = next(iter(health.values()))["as_of"] if health else datetime.now(UTC)
    expected = truth_of.health(truths, as_of)
    assert set(health) == set(expected)
    for key, want in expected.items():
        got = health[key]
        for column in ("zap_title", "last_run_at", "last_success_at", "current_failure_streak",
                       "count_failed_24h", "is_spiking"):
            assert got[column] == want[column], (key, column, got[column], want[column])
        for column in ("error_rate_24h", "error_rate_7d", "error_rate_30d"):
            assert close(got[column], want[column]), (key, column)
        change = None if want["error_rate_24h"] is None or want["prev_24h"] is None else \
            want["error_rate_24h"] - want["prev_24h"]
        assert close(got["error_rate_24h_change"], change)

    accounts = keyed(pipeline, "account_health")
    assert all(r["as_of"] == as_of for r in accounts.values()), "one as_of per build"
    assert_rows_match("account_health", accounts,
                      truth_of.account_health(truths, sync_log_rows(pipeline), as_of))
    assert_rows_match("partner_step_failures", keyed(pipeline, "partner_step_failures"),
                      truth_of.partner_step_failures(truths, as_of))
    assert_rows_match("zap_incidents", keyed(pipeline, "zap_incidents"), truth_of.incidents(truths))


def test_marts_equal_python_over_a_simulated_world(make_simulator, past_clock, tmp_path):
    world = small_world(seed=61, days=20, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "m.duckdb")
    run_sync(sim, pipeline, since=iso(past_clock.now() - timedelta(days=21)))
    build_models(pipeline)
    assert_grains(pipeline)
    assert_marts_match(pipeline, {ACCOUNT: world.truth()})


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
        assert_marts_match(pipeline, {ACCOUNT: world.truth()})
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
    assert_marts_match(pipeline, {ACCOUNT: world.truth()})
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
    for name in GRAINS:  # run_sync logs no sync: no account is known yet
        assert table(pipeline, name) == [], name
    world.add(_run(9, "error", past_clock.now() - timedelta(hours=1),
                   [{"status": "error", "start_time": None}]))
    run_sync(sim, pipeline)  # the stand-in steps table takes dlt's first real steps
    build_models(pipeline)
    assert_marts_match(pipeline, {ACCOUNT: world.truth()})


@pytest.mark.parametrize("model", load_models(), ids=lambda m: m.name)
def test_every_model_compiles_for_bigquery(model):
    sql = compile_model(model, "bigquery", "analytics")
    parsed = sqlglot.parse_one(sql, read="bigquery")
    assert parsed is not None and "analytics." in sql
    assert "::" not in sql


def test_every_model_is_built_after_the_models_it_reads():
    models = load_models()
    names = {m.name for m in models}
    built: set[str] = set()
    for model in models:
        inputs = {t.name for t in sqlglot.parse_one(model.sql, read="postgres").find_all(
            sqlglot.exp.Table)} & names
        assert inputs <= built, (model.name, inputs - built)
        built.add(model.name)


def test_every_model_file_states_its_grain():
    for model in load_models():
        assert model.sql.lstrip().startswith("-- grain:"), model.name


def test_models_command(make_simulator, monkeypatch, capsys):
    from pipelines.zap_runs.cli.main import main

    assert main(["models"]) == 1
    assert "run a sync first" in capsys.readouterr().err.strip().splitlines()[-1]
    sim = make_simulator()
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", sim.base_url)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", sim.token)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE", "0")
    assert main([]) == 0
    assert "models     13 rebuilt" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert "built 13 models" in capsys.readouterr().out


# --- accounts: the raw tables are written as the multi-account sync lays them out -----------

@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_accounts_with_the_same_ids_do_not_mix(destination, tmp_path, request):
    now = datetime.now(UTC).replace(microsecond=0)
    truths = colliding_truths(ManualClock(now - timedelta(minutes=5)))
    acme, globex = truths["acme"], truths["globex"]
    assert len(set(acme) & set(globex)) > 1000, "run ids collide"
    assert {r["zap_id"] for r in acme.values()} == {r["zap_id"] for r in globex.values()}
    log = [
        {"account_id": "acme", "sync_id": "s1", "started_at": now - timedelta(hours=2),
         "ended_at": now - timedelta(hours=2) + timedelta(seconds=40), "result": "success"},
        {"account_id": "globex", "sync_id": "s1", "started_at": now - timedelta(hours=2),
         "ended_at": now - timedelta(hours=2) + timedelta(seconds=50), "result": "success"},
        {"account_id": "acme", "sync_id": "s2", "started_at": now - timedelta(hours=1),
         "ended_at": now - timedelta(hours=1) + timedelta(seconds=2), "result": "failed",
         "error": "The Zapier API refused the access token (401): it was revoked."},
        {"account_id": "globex", "sync_id": "s2", "started_at": now - timedelta(hours=1),
         "ended_at": now - timedelta(hours=1) + timedelta(seconds=30), "result": "success"},
        # A pass that failed before it read any account: no account to blame.
        {"account_id": None, "sync_id": "s3", "started_at": now - timedelta(minutes=30),
         "ended_at": now - timedelta(minutes=30), "result": "failed", "error": "disk full"},
    ]
    pipeline = pipeline_for(destination, tmp_path, request, "accounts")
    try:
        write_raw_tables(pipeline, truths, log)
        build_models(pipeline)
        assert_grains(pipeline)
        assert_marts_match(pipeline, truths)
        steps = sum(len(r["steps"] or []) for truth in truths.values() for r in truth.values())
        assert len(table(pipeline, "stg_zap_run_steps")) == steps, "steps joined to one run each"
        accounts = keyed(pipeline, "account_health")
        assert set(accounts) == {"acme", "globex"}
        assert accounts["acme"]["needs_attention"] and accounts["acme"]["attention_reason"].startswith(
            "last sync failed: The Zapier API refused the access token (401)")
        assert not accounts["acme"]["is_stale"], "its last success is 2 h old"
        assert accounts["globex"]["last_sync_result"] == "success"
        assert not accounts["globex"]["is_sync_failing"] and not accounts["globex"]["is_stale"]
        # Both worlds have zaps titled alike (the simulator's odd titles): their steps add up.
        partner = keyed(pipeline, "partner_step_failures")
        assert max(r["count_accounts_reaching_7d"] for r in partner.values()) == 2
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)


def api_run(zap_id, title, status, start, steps, run_id=None):
    """A run as the API returns it; `steps` a string of step statuses: s success, e error,
    f filtered ("se": a success, then an error)."""
    names = {"s": "success", "e": "error", "f": "filtered"}
    return {"id": run_id or str(uuid.uuid4()), "zap_id": zap_id, "zap_title": title,
            "status": status, "start_time": iso(start), "end_time": iso(start + timedelta(seconds=5)),
            "steps": [{"status": names[c], "start_time": None} for c in steps],
            "data_in": None, "data_out": None}


def by_id(*runs):
    return {r["id"]: r for r in runs}


def test_account_health_says_which_account_needs_attention_and_why(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    hour = timedelta(hours=1)
    fine = [api_run(7, "Leads", "success", now - k * hour, "ss") for k in (1, 2, 3)]
    truths = {
        "fine": by_id(*fine), "revoked": by_id(*fine), "stale": by_id(*fine), "unlogged": by_id(*fine),
        "failing": by_id(*fine, api_run(7, "Leads", "error", now - 0.5 * hour, "se")),
    }
    log = [{"account_id": a, "sync_id": "s1", "started_at": now - 3 * hour,
            "ended_at": now - 3 * hour, "result": "success"} for a in ("revoked", "failing")]
    log += [
        {"account_id": "fine", "sync_id": "s2", "started_at": now - 0.5 * hour,
         "ended_at": now - 0.4 * hour, "result": "success"},
        {"account_id": "revoked", "sync_id": "s2", "started_at": now - hour, "ended_at": now - hour,
         "result": "failed", "error": "401: the token was revoked; reconnect the account"},
        {"account_id": "stale", "sync_id": "s0", "started_at": now - 7 * hour,
         "ended_at": now - 7 * hour, "result": "success"},
        {"account_id": "new", "sync_id": "s2", "started_at": now - hour, "ended_at": now - hour,
         "result": "skipped", "error": "no access token configured for this account"},
    ]
    pipeline = duckdb_pipeline(tmp_path / "h.duckdb")
    write_raw_tables(pipeline, truths, log)
    build_models(pipeline)
    assert_marts_match(pipeline, truths)
    got = {a: (r["needs_attention"], r["attention_reason"])
           for a, r in keyed(pipeline, "account_health").items()}
    assert got == {
        "fine": (False, None),
        "unlogged": (False, None),  # no sync logged: not judged on its syncs
        "revoked": (True, "last sync failed: 401: the token was revoked; reconnect the account"),
        "stale": (True, "no successful sync in the last 6 h"),
        "failing": (True, "zaps failing: 1"),
        "new": (True, "last sync skipped: no access token configured for this account; "
                      "no successful sync yet"),
    }
    new = keyed(pipeline, "account_health")["new"]
    assert new["count_zaps"] == 0 and new["last_run_at"] is None and new["count_runs_7d"] == 0


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_account_health_flags_an_error_rate_high_or_well_above_its_own(destination, tmp_path,
                                                                       request):
    pipeline = pipeline_for(destination, tmp_path, request, "rates")
    try:
        truths = error_rate_truths(datetime.now(UTC).replace(microsecond=0))
        write_raw_tables(pipeline, truths)
        build_models(pipeline)
        assert_grains(pipeline)
        assert_marts_match(pipeline, truths)
        got = {a: (r["is_error_rate_high"], r["needs_attention"], r["attention_reason"])
               for a, r in keyed(pipeline, "account_health").items()}
        assert got == {
            # 18 % in 24 h: above 10 %, whatever the account's past
            "jumped": (True, True, "error rate 18% in 24 h (1% in the 6 days before)"),
            # 7 % in 24 h: below 10 %, but 7 times its 1 % and 6 points above it
            "crept": (True, True, "error rate 7% in 24 h (1% in the 6 days before)"),
            "few": (False, False, None),  # 3 of 10: too few runs to tell
            "steady": (False, False, None),  # 1 % a run, by chance 1.2 % in the last 24 h
            "steady_noisy": (False, False, None),  # 1.5 % in 24 h against 1 %
        }
        rates = keyed(pipeline, "account_health")["jumped"]
        assert (rates["count_failed_24h"], rates["count_runs_24h"]) == (18, 100)
        assert close(rates["error_rate_7d"], 24 / 700)
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)


def test_partner_step_failures_count_the_accounts_a_step_fails_for(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    hour, day = timedelta(hours=1), timedelta(days=1)
    title = "New lead → CRM"
    truths = {
        # x, y and z run the same template under different zap ids; w reuses x's zap id.
        "x": by_id(api_run(11, title, "error", now - hour, "se"),
                   api_run(11, title, "success", now - 2 * hour, "sss"),
                   # x's zap 44 failed under the template's title, then was renamed.
                   api_run(44, title, "error", now - 3 * hour, "e"),
                   api_run(44, "Renamed", "success", now - hour, "s")),
        "y": by_id(api_run(22, title, "error", now - 2 * day, "se"),
                   api_run(22, title, "error", now - 9 * day, "sse")),  # older than 7 days
        "z": by_id(api_run(33, title, "success", now - hour, "ss")),
        "w": by_id(api_run(11, "Other zap", "error", now - hour, "se")),
    }
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    write_raw_tables(pipeline, truths)
    build_models(pipeline)
    assert_grains(pipeline)
    assert_marts_match(pipeline, truths)
    partner = keyed(pipeline, "partner_step_failures")
    assert set(partner) == {(title, 2), ("Other zap", 2), ("Renamed", 1)}
    step = partner[(title, 2)]
    assert (step["count_accounts_affected_24h"], step["count_accounts_affected_7d"],
            step["count_accounts_reaching_7d"], step["count_zaps_affected_7d"]) == (1, 2, 3, 2)
    assert (step["count_runs_failing_24h"], step["count_runs_failing_7d"],
            step["count_runs_reaching_7d"]) == (1, 2, 4)
    assert partner[("Other zap", 2)]["count_accounts_affected_7d"] == 1


def test_models_build_without_a_sync_log_and_the_log_still_takes_rows(tmp_path):
    now = datetime.now(UTC)
    truths = {"solo": by_id(api_run(5, "Z", "error", now - timedelta(hours=1), "e"))}
    pipeline = duckdb_pipeline(tmp_path / "nolog.duckdb")
    write_raw_tables(pipeline, truths)  # no zap_runs_sync_log
    build_models(pipeline)
    [solo] = table(pipeline, "account_health")
    assert solo["last_sync_result"] is None and solo["attention_reason"] == "zaps failing: 1"
    # The stand-in is the sync's own empty log: the next sync's outcome lands in it.
    synclog.record(pipeline, synclog.Outcome("s1", now, now, "success", account_id="solo"))
    build_models(pipeline)
    [solo] = table(pipeline, "account_health")
    assert solo["last_sync_result"] == "success" and solo["last_success_at"] is not None
