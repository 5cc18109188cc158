"""Each account's state lives in the warehouse (zap_runs_account_state), not in dlt's pipeline
state: loaded with the runs, read for the accounts a pass visits, carried over from the old
layout exactly."""

from __future__ import annotations

import json

import dlt
import pytest

from pipelines.simulator import Simulator
from pipelines.zap_runs.account_state import TABLE, read_states
from pipelines.zap_runs.pipeline import sync

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
    assert "accounts" not in pipeline.state["sources"]["zap_runs"]["resources"]["zap_runs"]
    assert_matches_truth(pipeline, sim.accounts["acme"].world.truth(), account="acme")
