"""The simulated world: realistic content, consistent steps, and life as the clock moves."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from pipelines.simulator import World, WorldConfig
from pipelines.simulator.clock import ManualClock
from pipelines.simulator.lifecycle import UNLISTED_OPEN_STATUSES

from .conftest import small_world
from .contract import STATUSES


def test_world_is_seeded_and_reproducible(past_clock):
    a = World(WorldConfig(seed=4, zaps=5, runs_per_day=200, history_days=3), past_clock)
    b = World(WorldConfig(seed=4, zaps=5, runs_per_day=200, history_days=3), past_clock)
    assert a.truth() == b.truth()


def test_content_is_realistic(past_clock):
    world = World(WorldConfig(seed=9, zaps=25, runs_per_day=1500, history_days=20), past_clock)
    runs = list(world.truth().values())
    statuses = Counter(r["status"] for r in runs)
    assert statuses["success"] / len(runs) > 0.6
    assert {"error", "error_handled", "halted", "filtered", "skipped"} <= set(statuses)
    assert set(statuses) - STATUSES, "an unlisted status should appear now and then"
    assert not set(statuses) & set(UNLISTED_OPEN_STATUSES), "unlisted open runs only when asked for"
    assert {"delayed", "scheduled"} & set(statuses), "some runs are still open"
    assert any(r["start_time"] is None for r in runs)
    kinds = {type(r["data_in"]).__name__ for r in runs}
    assert {"dict", "list", "str", "int", "float", "bool", "NoneType"} <= kinds
    assert any(r["data_in"] == "" for r in runs)
    assert any(len(json.dumps(r["data_out"])) > 5000 for r in runs)
    assert any(any(ord(c) > 127 for c in (r["zap_title"] or "")) for r in runs)
    hours = Counter(world.run(r["id"]).occurred_at.hour for r in runs)
    assert sum(hours[h] for h in range(9, 17)) > 2 * sum(hours[h] for h in (0, 1, 2, 3, 4, 5, 22, 23))
    by_zap_day = Counter((r["zap_id"], world.run(r["id"]).occurred_at.date()) for r in runs
                         if r["status"] == "error")
    assert max(by_zap_day.values()) >= 10, "flaky zaps have error bursts"


def test_steps_agree_with_their_run(past_clock):
    runs = small_world(seed=21, clock=past_clock).truth().values()
    for run in runs:
        steps = run["steps"]
        if run["start_time"] is None:
            assert steps is None
            continue
        statuses = [s["status"] for s in steps]
        if run["status"] == "success":
            assert set(statuses) == {"success"}
        elif run["status"] in ("error", "halted", "error_handled", "filtered"):
            assert statuses[-1] == run["status"] and set(statuses[:-1]) <= {"success"}
        elif run["status"] == "delayed":
            assert "filtered" in statuses and any(s["start_time"] is None for s in steps)


def test_time_brings_new_runs_settles_replays_and_purges(past_clock):
    world = World(WorldConfig(seed=2, zaps=10, runs_per_day=600, history_days=20,
                              retention_days=15, replay_max_hours=6), past_clock)
    before = world.truth()
    assert min(world.run(i).occurred_at for i in before) >= past_clock.now() - timedelta(days=15)
    open_before = {i for i, r in before.items()
                   if r["status"] in ("delayed", "scheduled", "pending", "held", "throttled")}
    errors_seen: set[str] = set()
    for _ in range(24):  # two days in steps of two hours, noting every run seen failed
        errors_seen |= {i for i, r in world.truth().items() if r["status"] == "error"}
        past_clock.advance(timedelta(hours=2))
    after = world.truth()
    assert len(set(after) - set(before)) > 500, "new runs arrive"
    assert set(before) - set(after), "old runs are purged"
    settled = {i for i in open_before if i in after and after[i]["status"] != before[i]["status"]}
    assert len(settled) >= len(open_before) / 3, "open runs settle as time passes"
    replayed = {i for i in errors_seen if i in after and after[i]["status"] == "success"}
    assert replayed, "some failed runs are replayed by hand and succeed"


def test_unlisted_open_statuses_show_first_then_settle_as_the_clock_moves(past_clock):
    world = small_world(seed=23, clock=past_clock, unlisted_open_rate=0.3, unlisted_settle_hours=4)
    assert not set(UNLISTED_OPEN_STATUSES) & STATUSES
    started = past_clock.now()
    first: dict[str, dict] = {}
    settled_while_watched: set[str] = set()
    for _ in range(12):  # six hours in steps of half an hour
        now = past_clock.now()
        for run_id, run in world.truth(started - timedelta(hours=6)).items():
            first.setdefault(run_id, run)
            if run["status"] in UNLISTED_OPEN_STATUSES:
                assert now - world.run(run_id).occurred_at <= timedelta(hours=4), "settles in time"
            elif first[run_id]["status"] in UNLISTED_OPEN_STATUSES:
                settled_while_watched.add(run_id)
        past_clock.advance(timedelta(minutes=30))
    unlisted = {i for i, r in first.items() if r["status"] in UNLISTED_OPEN_STATUSES}
    born_unlisted = {i for i in unlisted if world.run(i).occurred_at > started}
    assert {first[i]["status"] for i in unlisted} == set(UNLISTED_OPEN_STATUSES)
    assert len(born_unlisted) > 20, "new runs first appear with an unlisted status"
    assert settled_while_watched, "they settle while the clock moves, seen in between"
    for run_id in unlisted:
        run = first[run_id]
        assert run["start_time"] and run["end_time"] is None
        assert [s["status"] for s in run["steps"]] == ["success"]  # only the trigger ran so far
    past_clock.advance(timedelta(hours=4))
    now = world.truth(started - timedelta(hours=6))
    outcomes = Counter()
    for run_id in unlisted:
        run, steps = now[run_id], [s["status"] for s in now[run_id]["steps"]]
        outcomes[run["status"]] += 1
        assert run["end_time"] is not None and len(steps) > 1, "settled with more steps"
        if run["status"] == "success":
            assert set(steps) == {"success"}
            assert len(steps) == next(z.step_count for z in world.zaps if z.id == run["zap_id"])
        else:
            assert run["status"] == "error"
            assert steps[-1] == "error" and set(steps[:-1]) == {"success"}, "a failing step"
    assert outcomes["success"] and outcomes["error"], outcomes


def test_runs_triggered_since_the_last_look_are_visible_within_the_same_hour():
    """The world caches listings; a clock that moved inside an hour already generated, with
    nothing settled meanwhile, must still show the runs triggered since."""
    clock = ManualClock(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
    world = World(WorldConfig(seed=8, zaps=4, runs_per_day=2000, history_days=1), clock)
    checked = 0
    for _ in range(700):
        shown, version, since = set(world.truth()), world.version, clock.now()
        clock.advance(timedelta(seconds=5))
        now = set(world.truth())
        new = {r.id for r in world.runs if since < r.occurred_at <= clock.now()}
        if new and world.version == version:  # only the clock moved: the cached listing is stale
            assert new <= now and shown < now
            checked += 1
            if checked == 3:
                break
    assert checked, "no step of the clock added runs without other changes"
