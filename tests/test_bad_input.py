"""Bad input from the API: transient breakage is retried; the rest ends the sync cleanly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipelines.simulator import Faults
from pipelines.zap_runs.accounts.state import read_states
from pipelines.zap_runs.common.errors import ApiError, RetriesExhausted

from .conftest import small_world
from .warehouse import assert_matches_truth, duckdb_pipeline, run_sync, warehouse_runs


def cursor_of(pipeline):
    return read_states(pipeline, ["default"]).get("default", {}).get("cursor")


def test_transient_garbage_is_retried(make_simulator, past_clock, tmp_path):
    world = small_world(seed=101, clock=past_clock)
    sim = make_simulator(world, faults=Faults(truncate_rate=0.2, html_error_rate=0.2,
                                              corrupt_rate=0.1, fault_retry_after=0))
    pipeline = duckdb_pipeline(tmp_path / "t.duckdb")
    result = run_sync(sim, pipeline, max_retries=10)
    assert result.retries > 0
    assert_matches_truth(pipeline, world.truth())


@pytest.mark.parametrize("corruption,error,needle", [
    ("missing_id", RetriesExhausted, "without a string 'id'"),
    ("bad_zap_id", ApiError, "zap_id is not an integer"),
    ("bad_time", ApiError, "malformed run"),
    ("not_a_list", ApiError, "steps is not a list"),
])
def test_persistent_garbage_ends_the_sync_naming_the_request(make_simulator, past_clock, tmp_path,
                                                             corruption, error, needle):
    world = small_world(seed=102, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    run_sync(sim, pipeline)
    before, cursor = warehouse_runs(pipeline), cursor_of(pipeline)
    past_clock.advance(timedelta(hours=5))
    sim.faults.corrupt_rate, sim.faults.corruption = 1.0, corruption
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    with pytest.raises(Exception) as raised:
        run_sync(sim, pipeline, max_retries=2)
    from pipelines.zap_runs.common.errors import unwrap

    found = unwrap(raised.value)
    assert isinstance(found, error) and needle in str(found)
    assert "GET /v2/zap-runs?" in str(found), "the message names the request"
    assert warehouse_runs(pipeline) == before, "what was loaded before is kept as it was"
    assert cursor_of(duckdb_pipeline(tmp_path / "p.duckdb")) == cursor, "the cursor did not move"
    sim.faults.corrupt_rate = 0.0
    run_sync(sim, duckdb_pipeline(tmp_path / "p.duckdb"))
    assert_matches_truth(duckdb_pipeline(tmp_path / "p.duckdb"), world.truth())


def test_a_key_only_the_command_line_sets_is_named_not_ignored(monkeypatch, caplog):
    """full_refresh and its kind are the command line's (an older version read them from
    [sources.zap_runs]): one found there is said, with the option to use."""
    from pipelines.zap_runs import zap_runs_source

    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", "t")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__FULL_REFRESH", "true")
    with caplog.at_level("WARNING"):
        zap_runs_source()
    [warning] = [r.getMessage() for r in caplog.records if "is not read" in r.getMessage()]
    assert warning.startswith("full_refresh under [sources.zap_runs]") and "--full-refresh" in warning
