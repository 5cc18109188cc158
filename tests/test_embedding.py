"""Embedded in plain dlt (an Airflow task, a Dagster asset): a pass in which accounts failed raises
SomeAccountsFailed once the others are loaded, so the orchestrator sees it."""

from __future__ import annotations

import dlt
import pytest

from pipelines.simulator import Simulator
from pipelines.zap_runs import SomeAccountsFailed, zap_runs_source
from pipelines.zap_runs.accounts.state import read_states

from .conftest import small_world
from .warehouse import FAST, assert_matches_truth


@pytest.fixture
def two_accounts(past_clock):
    worlds = {"acme": small_world(seed=3, days=3, clock=past_clock),
              "globex": small_world(seed=11, days=3, clock=past_clock, runs_per_day=150)}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    yield sim
    sim.stop()


def plain_pipeline(tmp_path) -> dlt.Pipeline:
    return dlt.pipeline("zap_runs", destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
                        dataset_name="zapier", pipelines_dir=str(tmp_path / "pipelines"))


def source(sim, tokens: dict[str, str], **args):
    accounts = [{"name": name, "access_token": token} for name, token in tokens.items()]
    return zap_runs_source(accounts=accounts, base_url=sim.base_url, **FAST, **args)


def test_plain_dlt_raises_after_the_others_are_loaded(two_accounts, tmp_path):
    sim = two_accounts
    pipeline = plain_pipeline(tmp_path)
    tokens = {"acme": sim.accounts["acme"].token, "globex": "revoked-or-wrong"}
    with pytest.raises(SomeAccountsFailed) as raised:
        pipeline.run(source(sim, tokens))
    error = raised.value
    assert [(a.account, a.result) for a in error.failed] == [("globex", "failed")]
    assert sorted(a.account for a in error.accounts) == ["acme", "globex"]
    assert "1 of 2 accounts failed" in str(error) and "the others are loaded" in str(error)
    assert "revoked-or-wrong" not in str(error)
    # Loaded and committed: acme's runs, its state, and no package left pending.
    assert error.load_info is not None and not error.load_info.has_failed_jobs
    assert not pipeline.has_pending_data
    assert_matches_truth(pipeline, sim.accounts["acme"].world.truth(), account="acme")
    assert read_states(pipeline, ["acme", "globex"]).keys() == {"acme", "globex"}
    assert "accounts" not in pipeline.state["sources"]["zap_runs"]["resources"]["zap_runs"]
    # The next run with every account well returns dlt's LoadInfo, as usual, and loads globex.
    tokens["globex"] = sim.accounts["globex"].token
    info = pipeline.run(source(sim, tokens))
    assert info.loads_ids and not info.has_failed_jobs
    assert_matches_truth(pipeline, sim.accounts["globex"].world.truth(), account="globex")


def test_raise_on_failed_accounts_false_only_returns(two_accounts, tmp_path):
    sim = two_accounts
    pipeline = plain_pipeline(tmp_path)
    tokens = {"acme": sim.accounts["acme"].token, "globex": "wrong"}
    info = pipeline.run(source(sim, tokens, raise_on_failed_accounts=False))
    assert info.loads_ids
    # And the pipeline's load is dlt's own again: a later run that fails nothing returns.
    assert "load" not in pipeline.__dict__


def test_the_source_iterated_by_hand_raises_at_the_end(two_accounts, tmp_path):
    sim = two_accounts
    tokens = {"acme": sim.accounts["acme"].token, "globex": "wrong"}
    rows = []
    with pytest.raises(Exception) as raised:  # dlt wraps what a resource raises
        for item in source(sim, tokens):  # no pipeline: nothing to wait for
            rows.append(item)
    error = raised.value
    while error is not None and not isinstance(error, SomeAccountsFailed):
        error = error.__cause__ or error.__context__
    assert rows and [a.account for a in error.failed] == ["globex"]
    assert not (tmp_path / "dlt-data" / "pipelines").exists(), "no default pipeline was made"


def test_logged_sync_returns_failed_accounts_whatever_the_source_argument(two_accounts, tmp_path):
    from pipelines.zap_runs.warehouse.pipeline import logged_sync

    from .warehouse import duckdb_pipeline

    sim = two_accounts
    pipeline = duckdb_pipeline(tmp_path / "l.duckdb")
    accounts = [{"name": "acme", "access_token": sim.accounts["acme"].token},
                {"name": "globex", "access_token": "wrong"}]
    result = logged_sync(pipeline, base_url=sim.base_url, accounts=accounts,
                         raise_on_failed_accounts=True, **FAST)
    assert [a.account for a in result.failed_accounts] == ["globex"]
    with pipeline.sql_client() as client:
        log = dict(client.execute_sql("select account_id, result from zapier.zap_runs_sync_log"))
    assert log == {"acme": "success", "globex": "failed"}


def test_steps_run_one_by_one_raise_at_the_load_of_the_package(two_accounts, tmp_path):
    sim = two_accounts
    pipeline = plain_pipeline(tmp_path)
    tokens = {"acme": sim.accounts["acme"].token, "globex": "wrong"}
    pipeline.extract(source(sim, tokens))
    pipeline.normalize()
    with pytest.raises(SomeAccountsFailed) as raised:
        pipeline.load()
    assert raised.value.load_info.loads_ids and "load" not in pipeline.__dict__
    assert pipeline.load() is not None  # dlt's own again: nothing pending, nothing raised
