"""What an incremental sync spends of the rate limit: pinned against B, the budget of what changed.

B = ceil(new / page) + ceil(open / page) + ceil(recent_errors / page) + changed, computed from the
simulated world's truth (pipelines/simulator/budget.py), not from what the sync saw.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from urllib.parse import parse_qs

import pytest

from pipelines.simulator import Faults
from pipelines.simulator.budget import snapshot, truth_budget
from pipelines.simulator.lifecycle import Change, Run, iso

from .conftest import small_world
from .warehouse import (
    assert_matches_truth,
    drop_datasets,
    duckdb_pipeline,
    pipeline_for,
    run_sync,
    warehouse_runs,
)

PAGE = 100
# Faults that make the sync retry but leave pages whole (short pages cost pages B cannot know).
RETRYING = dict(error_rate=0.05, html_error_rate=0.03, truncate_rate=0.03, drop_next_rate=0.2,
                fault_retry_after=0)


def spent(sim, mark: int) -> dict[str, int]:
    """The requests since `mark`, by what they asked for (every attempt counted)."""
    out = dict.fromkeys(("main", "open", "errors", "late_errors", "rechecks", "probe"), 0)
    for record in sim.zap_run_requests()[mark:]:
        q = {k: v[-1] for k, v in parse_qs(record["query"]).items()}
        if q.get("limit") == "1":
            out["probe"] += 1
        elif "delayed" in q.get("statuses", ""):
            out["open"] += 1
        elif q.get("statuses") == "error":
            out["late_errors" if "zap_id" in q else "errors"] += 1
        elif "zap_id" in q:
            out["rechecks"] += 1
        else:
            out["main"] += 1
    return out


def next_sync(sim, pipeline, world, clock, hours: float = 1):
    """The clock moved on by `hours`, then a sync: (its result, the requests the server saw by
    kind, B from the truth)."""
    before = snapshot(world)
    clock.advance(timedelta(hours=hours))
    mark = len(sim.zap_run_requests())
    result = run_sync(sim, pipeline)
    return result, spent(sim, mark), truth_budget(world, before, PAGE)


def add_delayed(world, at, count: int, zaps: int = 10, settle_after: timedelta | None = None,
                spread: timedelta = timedelta(days=2), status: str = "delayed",
                first: int = 0) -> list[str]:
    """`count` hand-made runs in `status`, spread over `spread` before `at` and over `zaps` zaps;
    they settle as success `settle_after` from `at` (never within a test when None)."""
    ids = []
    for i in range(count):
        start = at - spread + spread * (i + 0.5) / count
        run_id = str(uuid.UUID(int=(7 << 120) + first + i))
        steps = [{"status": "success", "start_time": iso(start)}, {"status": "filtered",
                                                                    "start_time": None}]
        done = at + (settle_after or timedelta(days=365))
        world.add(Run(id=run_id, zap_id=4000 + i % zaps, zap_title="held up", occurred_at=start,
                      status=status, start_time=start, end_time=None, steps=steps, data_in={},
                      data_out={}),
                  [Change(done, "success", start, done,
                          [{"status": "success", "start_time": iso(start)}] * 2)])
        ids.append(run_id)
    return ids


def test_open_runs_that_stay_open_cost_their_listing_pages_not_a_request_each(
        make_simulator, past_clock, tmp_path):
    world = small_world(seed=61, days=3, clock=past_clock, runs_per_day=20, replay_max_hours=0)
    add_delayed(world, past_clock.now(), 500)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "o.duckdb")
    run_sync(sim, pipeline)
    result, cost, truth = next_sync(sim, pipeline, world, past_clock)
    assert truth.open >= 500
    assert 5 <= cost["open"] <= math.ceil(truth.open / PAGE)
    assert cost["open"] == result.spend.by_purpose["open"]
    assert cost["probe"] <= result.spend.by_purpose["unlisted"]
    assert result.spend.by_purpose["rechecks"] <= truth.changed
    assert sum(result.spend.by_purpose.values()) == sum(cost.values())
    assert result.spend.in_budget <= truth.total


def test_a_changed_run_costs_at_most_one_request(make_simulator, past_clock, tmp_path):
    world = small_world(seed=62, days=3, clock=past_clock, runs_per_day=20, replay_max_hours=0)
    now = past_clock.now()
    add_delayed(world, now, 300, zaps=30)
    settling = add_delayed(world, now, 7, zaps=7, settle_after=timedelta(minutes=30),
                           spread=timedelta(days=1, hours=7), first=1000)
    settling_ids = set(settling)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "c.duckdb")
    run_sync(sim, pipeline)
    result, cost, truth = next_sync(sim, pipeline, world, past_clock)
    assert truth.changed >= 7
    spent_on = result.spend.by_purpose
    assert 1 <= spent_on["rechecks"] <= truth.changed
    # The server tells a re-check from the re-read of a run in a status the contract does not
    # list (the world has a few, by the hour its clock is at) only by what the sync counted.
    assert cost["rechecks"] == spent_on["rechecks"] + spent_on["unlisted"] - cost["probe"]
    stored = warehouse_runs(pipeline)
    assert {stored[i]["status"] for i in settling_ids} == {"success"}
    assert result.spend.in_budget <= truth.total


def test_a_quiet_account_reads_its_watched_runs_with_its_new_ones_in_one_request(
        make_simulator, past_clock, tmp_path):
    """Every run since its oldest watched one fits in a page: one wide main window stands for
    the main window and both listings (widen.py)."""
    world = small_world(seed=63, days=1, clock=past_clock, runs_per_day=0)
    now = past_clock.now()
    add_delayed(world, now, 3, spread=timedelta(hours=20))
    add_delayed(world, now - timedelta(hours=2), 2, status="error", spread=timedelta(hours=20),
                first=1000)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "q.duckdb")
    run_sync(sim, pipeline)
    before = snapshot(world)
    past_clock.advance(timedelta(hours=1))
    mark = len(sim.zap_run_requests())
    result = run_sync(sim, pipeline)
    assert spent(sim, mark) == {"main": 1, "open": 0, "errors": 0, "late_errors": 0,
                                "rechecks": 0, "probe": 0}
    assert result.spend.by_purpose == {"new": 0, "lookback": 1, "open": 0, "errors": 0,
                                       "rechecks": 0, "unlisted": 0, "late": 0}
    assert truth_budget(world, before, PAGE).total == 2 and result.spend.in_budget == 0
    assert result.window_from < now - timedelta(hours=2), "the window reached the watched runs"


def test_a_busy_account_is_never_widened(make_simulator, past_clock, tmp_path):
    """Its watched runs lie among more runs than a page holds: the short window and the
    listings, as before."""
    world = small_world(seed=66, days=1, clock=past_clock, runs_per_day=3000)
    now = past_clock.now()
    add_delayed(world, now, 3, spread=timedelta(hours=20))
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "b.duckdb")
    run_sync(sim, pipeline)
    past_clock.advance(timedelta(minutes=30))
    result = run_sync(sim, pipeline)
    assert result.window_from >= now - timedelta(hours=1)
    assert result.spend.by_purpose["open"] >= 1


def test_failed_runs_replayed_days_later_are_found_through_the_error_listing(
        make_simulator, past_clock, tmp_path):
    """Replays up to 2.5 days after a failure, syncs every 6 h with the 15-minute lookback:
    every replayed run ends up stored as its replay, and nothing re-reads history to get it."""
    world = small_world(seed=64, days=3, clock=past_clock, runs_per_day=600, replay_max_hours=60)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "e.duckdb")
    run_sync(sim, pipeline)
    failed: set[str] = set()
    for _ in range(10):
        failed |= {i for i, r in warehouse_runs(pipeline).items() if r["status"] == "error"}
        before = snapshot(world)
        past_clock.advance(timedelta(hours=6))
        mark = len(sim.zap_run_requests())
        result = run_sync(sim, pipeline)
        cost = spent(sim, mark)
        truth = truth_budget(world, before, PAGE)
        # The listing reaches up to 6 h before the horizon, so it may hold a page more.
        assert 1 <= cost["errors"] <= math.ceil(truth.recent_errors / PAGE) + 1
        assert cost["main"] <= math.ceil(truth.new / PAGE) + 1, "history is not re-read"
        assert result.spend.by_purpose["rechecks"] <= 2 * truth.changed
    truth = world.truth()
    replayed = {i for i in failed if i in truth and truth[i]["status"] == "success"}
    assert len(replayed) >= 5, "the world should have replayed failed runs"
    assert_matches_truth(pipeline, truth)


def test_a_run_that_fails_after_a_long_delay_is_watched_for_replays(make_simulator, past_clock,
                                                                     tmp_path):
    """Triggered five days ago, held by a Delay, failed an hour from now and replayed by hand a
    day later: outside every window and the error listing's span, it is read by its zap's
    `statuses=error` window until the replay shows."""
    world = small_world(seed=65, days=6, clock=past_clock, runs_per_day=100, replay_max_hours=0)
    now = past_clock.now()
    start = now - timedelta(days=5)
    steps = [{"status": "success", "start_time": iso(start)}]
    world.add(Run(id="00000000-0000-4000-8000-00000000dead", zap_id=777, zap_title="late",
                  occurred_at=start, status="delayed", start_time=start, end_time=None,
                  steps=steps + [{"status": "filtered", "start_time": None}], data_in={},
                  data_out={}),
              [Change(now + timedelta(hours=1), "error", start, now + timedelta(hours=1),
                      steps + [{"status": "error", "start_time": iso(now + timedelta(hours=1))}]),
               Change(now + timedelta(hours=26), "success", start, now + timedelta(hours=26),
                      steps * 2)])
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "l.duckdb")
    seen = []
    for hours in (0, 2, 12, 15):
        past_clock.advance(timedelta(hours=hours))
        mark = len(sim.zap_run_requests())
        run_sync(sim, pipeline)
        late = [r for r in sim.zap_run_requests()[mark:]
                if "zap_id=777&" in r["query"] and "statuses=error" in r["query"]]
        seen.append((warehouse_runs(pipeline)["00000000-0000-4000-8000-00000000dead"]["status"],
                     len(late)))
    assert seen == [("delayed", 0), ("error", 0), ("error", 1), ("success", 1)]
    assert_matches_truth(pipeline, world.truth())


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_living_world_with_faults_stays_exact_within_budget(make_simulator, past_clock, tmp_path,
                                                            request, destination):
    """Hourly syncs over a living world (Delays, held runs, unlisted statuses, replays)
    with faults: each costs at most B (retries and what B leaves out apart), and the warehouse
    equals the truth."""
    world = small_world(seed=66, days=8, clock=past_clock, runs_per_day=1500)
    sim = make_simulator(world, faults=Faults(**RETRYING))
    pipeline = pipeline_for(destination, tmp_path, request, "budget")
    try:
        run_sync(sim, pipeline)
        retries, ratios = 0, []
        for _ in range(8):
            before = snapshot(world)
            past_clock.advance(timedelta(hours=1))
            mark = len(sim.zap_run_requests())
            result = run_sync(sim, pipeline)
            truth = truth_budget(world, before, PAGE)
            spent_in_budget = result.spend.in_budget
            every = sum(result.spend.by_purpose.values()) + result.spend.retries
            assert every == len(sim.zap_run_requests()) - mark, "every request is accounted for"
            ratios.append(round(spent_in_budget / truth.total, 2))
            retries += result.spend.retries
        assert max(ratios) <= 1.0, ratios
        assert retries > 0, "the faults should have forced retries"
        assert_matches_truth(pipeline, world.truth())
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)
