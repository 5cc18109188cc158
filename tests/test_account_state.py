"""Each account's state lives in the warehouse (zap_runs_account_state), not in dlt's pipeline
state: loaded with the runs, read for the accounts a pass visits, carried over from the old
layout exactly."""

from __future__ import annotations

import json
import time

import dlt
import pytest

from pipelines.simulator import Simulator
from pipelines.zap_runs.accounts.state import TABLE, read_states
from pipelines.zap_runs.warehouse.pipeline import sync

from .conftest import small_world
from .warehouse import FAST, assert_matches_truth, duckdb_pipeline, pipeline_for


@pytest.fixture
def three_accounts(past_clock):
    worlds = {name: small_world(seed=70 + i, days=2, clock=past_clock, runs_per_day=80)
              for i, name in enumerate(["acme", "globex", "initech"])}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    yield sim
    sim.stop()


def accounts(sim, names=None) -> list[dict]:
    return [{"name": n, "access_token": sim.accounts[n].token} for n in names or sim.accounts]


def write_legacy_state(pipeline: dlt.Pipeline, legacy: dict) -> None:
    """The layout before: every account's state in the zap_runs resource state."""
    @dlt.resource(name="zap_runs")
    def zap_runs():
        dlt.current.resource_state()["accounts"] = legacy
        yield from ()

    @dlt.source(name="zap_runs", section="zap_runs", max_table_nesting=1)
    def zap_runs_source():
        return zap_runs()

    pipeline.extract(zap_runs_source())
    pipeline.normalize()
    pipeline.load()


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_pipeline_state_holds_no_account(three_accounts, destination, tmp_path, request):
    sim = three_accounts
    pipeline = pipeline_for(destination, tmp_path, request, "zap_runs_state")
    for _ in range(2):
        sync(pipeline, base_url=sim.base_url, accounts=accounts(sim), **FAST)
    resource = pipeline.state["sources"]["zap_runs"]["resources"]["zap_runs"]
    assert "accounts" not in resource and len(json.dumps(pipeline.state, default=str)) < 4_000
    states = read_states(pipeline, sim.accounts)
    assert states.keys() == set(sim.accounts)
    assert all(state["cursor"] and "watched" in state for state in states.values())
    # A pass reads the rows of the accounts it visits: one of three here.
    assert read_states(pipeline, ["globex"]).keys() == {"globex"}
    for name in sim.accounts:
        assert_matches_truth(pipeline, sim.accounts[name].world.truth(), account=name)


def test_the_old_layout_is_carried_over_exactly(three_accounts, tmp_path):
    sim = three_accounts
    pipeline = duckdb_pipeline(tmp_path / "up.duckdb")
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim, ["acme"]), **FAST)
    acme = read_states(pipeline, ["acme"])["acme"]
    # Back to the old layout: acme's state (and one of an account no longer configured) in the
    # pipeline state, no rows.
    with pipeline.sql_client() as client:
        client.execute_sql(f"delete from {client.make_qualified_table_name(TABLE)}")
    gone = {"cursor": "2026-11-01T00:00:00.000000Z", "watched": "{}", "failures": 2}
    write_legacy_state(pipeline, {"acme": acme, "gone": gone})
    assert read_states(pipeline, ["acme", "gone"]) == {}
    requests = len(sim.requests)
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim, ["acme"]), **FAST)
    assert len(sim.requests) - requests < 10, "acme went on from its carried-over cursor"
    carried = read_states(pipeline, ["acme", "gone"])
    assert carried["gone"] == gone, "an account not read in the pass keeps its state as it was"
    assert carried["acme"]["cursor"] >= acme["cursor"]
    # The old state stays in the pipeline state until a pass finds every account's row of a
    # completed load (an aborted first package loses nothing); the next pass drops it.
    resource = pipeline.state["sources"]["zap_runs"]["resources"]["zap_runs"]
    assert set(resource["accounts"]) == {"acme", "gone"}
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim, ["acme"]), **FAST)
    assert "accounts" not in pipeline.state["sources"]["zap_runs"]["resources"]["zap_runs"]
    assert read_states(pipeline, ["gone"])["gone"] == gone
    assert_matches_truth(pipeline, sim.accounts["acme"].world.truth(), account="acme")


def test_a_state_row_whose_load_never_completed_is_not_read(three_accounts, tmp_path, past_clock):
    """A sync killed after the state's job committed and before the runs' did, its pipeline
    folder then lost (a new container): the next sync reads the state before it, and nothing of
    the runs is lost."""
    import shutil
    from datetime import timedelta

    sim = three_accounts
    pipeline = duckdb_pipeline(tmp_path / "k.duckdb")
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim), **FAST)
    before = read_states(pipeline, ["acme"])["acme"]
    past_clock.advance(timedelta(hours=6))
    ahead = {**before, "cursor": past_clock.now().strftime("%Y-%m-%dT%H:%M:%S.000000Z")}
    with pipeline.sql_client() as client:  # the state's job of a package that never completed
        client.execute_sql(
            f"insert into {client.make_qualified_table_name(TABLE)} (account_id, state, updated_at, "
            "pipeline_name, _dlt_load_id, _dlt_id) values ('acme', %s, now(), 'zap_runs', %s, 'x')",
            json.dumps(ahead), f"{time.time():.7f}")
    assert read_states(pipeline, ["acme"])["acme"] == before
    shutil.rmtree(pipeline.working_dir)
    pipeline = duckdb_pipeline(tmp_path / "k.duckdb")
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim), **FAST)
    for name in sim.accounts:
        assert_matches_truth(pipeline, sim.accounts[name].world.truth(), account=name)
    read_states(pipeline, sim.accounts)  # superseded rows, the orphan among them, go
    with pipeline.sql_client() as client:
        counts = client.execute_sql(f"select account_id, count(*) from "
                                    f"{client.make_qualified_table_name(TABLE)} group by 1")
    assert sorted(counts) == [(name, 1) for name in sorted(sim.accounts)]


def test_forget_loads_a_pending_package_first(three_accounts, tmp_path, monkeypatch, capsys):
    from pipelines.zap_runs import zap_runs_source
    from pipelines.zap_runs.warehouse.forget import forget_account

    sim = three_accounts
    pipeline = duckdb_pipeline(tmp_path / "f.duckdb")
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim), **FAST)
    # A sync killed after extract and normalize: its package is pending.
    pipeline.extract(zap_runs_source(base_url=sim.base_url, accounts=accounts(sim),
                                     raise_on_failed_accounts=False, **FAST))
    pipeline.normalize()
    assert pipeline.has_pending_data
    forget_account(pipeline, "globex", str(tmp_path / "tokens.json"))
    sync(pipeline, base_url=sim.base_url, accounts=accounts(sim, ["acme", "initech"]), **FAST)
    with pipeline.sql_client() as client:
        for table in ("zap_runs", TABLE):
            left = client.execute_sql(f"select count(*) from {client.make_qualified_table_name(table)} "
                                      "where account_id = 'globex'")[0][0]
            assert left == 0, f"globex came back in {table}"
