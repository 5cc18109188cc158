"""zap_incidents: failing episodes of a zap, opened and resolved by the configured rules, exact
against a Python state machine over the simulator's truth, also after replays change statuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.simulator import Episode, ManualClock, World, WorldConfig
from pipelines.simulator.lifecycle import iso
from pipelines.zap_runs.common.errors import ConfigError
from pipelines.zap_runs.common.sync_config import SyncConfig
from pipelines.zap_runs.warehouse.models import build_models, incident_rules

from . import model_truth as truth_of
from .test_models import ACCOUNT, assert_rows_match, keyed, table
from .warehouse import drop_datasets, pipeline_for, run_sync

START = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)  # a fixed world: its episodes are its own


def episode_world(clock: ManualClock) -> tuple[World, list[int]]:
    """Three days of four zaps, a fifth of failures replayed: the busiest zap failed for 5 hours
    a day ago (an incident opened and resolved), the second busiest fails from 3 hours ago for
    two days (an incident still open)."""
    config = WorldConfig(seed=11, zaps=4, runs_per_day=600, history_days=3, replay_share=0.2)
    probe = World(config, clock)
    busiest = sorted(range(len(probe.zaps)), key=lambda i: -probe.zaps[i].runs_per_hour)[:2]
    now = clock.now()
    world = World(replace(config, episodes=(Episode(busiest[0], now - timedelta(hours=30), 5),
                                            Episode(busiest[1], now - timedelta(hours=3), 48))),
                  clock)
    return world, [world.zaps[i].id for i in busiest]


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_incidents_open_and_resolve_as_the_truth_says_also_after_replays(
        destination, make_simulator, tmp_path, request):
    clock = ManualClock(START)
    world, (resolved_zap, open_zap) = episode_world(clock)
    sim = make_simulator(world)
    pipeline = pipeline_for(destination, tmp_path, request, "incidents")
    try:
        run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
        build_models(pipeline)
        got = keyed(pipeline, "zap_incidents")
        assert_rows_match("zap_incidents", got, truth_of.incidents({ACCOUNT: world.truth()}))
        began = START - timedelta(hours=30)
        past = [row for key, row in got.items() if key[1] == resolved_zap
                and began <= row["first_failed_at"] < began + timedelta(hours=5)]
        assert past and all(not r["is_open"] and r["resolved_at"] > r["opened_at"] for r in past)
        (now_open,) = [row for key, row in got.items() if key[1] == open_zap and row["is_open"]]
        assert now_open["resolved_at"] is None and now_open["failed_runs"] >= 3
        assert now_open["first_failed_at"] >= START - timedelta(hours=3)
        assert now_open["first_failed_status"] == "error" and now_open["first_failed_step"] >= 1

        # Hours later the failures have been replayed (some succeeded), and new ones came.
        clock.advance(timedelta(hours=13))
        run_sync(sim, pipeline)
        build_models(pipeline)
        truth = world.truth()
        assert_rows_match("zap_incidents", keyed(pipeline, "zap_incidents"),
                          truth_of.incidents({ACCOUNT: truth}))
        replayed = [r for r in truth.values() if r["zap_id"] == open_zap
                    and r["status"] == "success" and datetime.fromisoformat(r["start_time"])
                    >= START - timedelta(hours=3)]
        assert replayed, "a failure of the open episode was replayed and succeeded"
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)


def test_the_rules_are_configurable_and_stored_with_the_incidents(make_simulator, tmp_path,
                                                                  request):
    clock = ManualClock(START)
    world, _ = episode_world(clock)
    sim = make_simulator(world)
    pipeline = pipeline_for("duckdb", tmp_path, request, "rules")
    run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
    truths = {ACCOUNT: world.truth()}
    config = SyncConfig(incident_open_after=1, incident_resolve_after=5)
    build_models(pipeline, config)
    assert table(pipeline, "incident_rules") == [{"open_after": 1, "resolve_after": 5}]
    strict = keyed(pipeline, "zap_incidents")
    assert_rows_match("zap_incidents", strict, truth_of.incidents(truths, 1, 5))
    build_models(pipeline, SyncConfig())
    assert len(keyed(pipeline, "zap_incidents")) < len(strict), "3 in a row open fewer than 1"


@pytest.mark.parametrize("value", [0, -2, "3", 2.5, True])
def test_a_bad_rule_is_a_config_error(value):
    with pytest.raises(ConfigError, match="incident_open_after under \\[sources.zap_runs\\]"):
        incident_rules(SyncConfig(incident_open_after=value))


def test_an_episode_fails_every_run_of_its_zap_in_its_hours():
    """As when an app is disconnected: every run of the zap triggered in the episode fails, no
    error handler saves one, and none succeeds (replayed) before the episode ends."""
    clock = ManualClock(START)
    world, (resolved_zap, _) = episode_world(clock)
    begins, ends = START - timedelta(hours=30), START - timedelta(hours=25)
    world.truth()  # brought up to the clock
    inside = [r for r in world.runs if r.zap_id == resolved_zap and begins <= r.occurred_at < ends]
    finished = [r for r in inside if r.status in ("error", "error_handled", "success")]
    assert len(finished) >= 10
    assert not [r for r in finished if r.status == "error_handled"]
    succeeded = [r for r in finished if r.status == "success"]
    assert all(r.end_time >= ends for r in succeeded), "replayed early"
    assert len(succeeded) < len(finished), "some failures are not replayed"
    with pytest.raises(ValueError, match="zap number must be under zaps"):
        WorldConfig(zaps=2, episodes=(Episode(2, START, 1),))
