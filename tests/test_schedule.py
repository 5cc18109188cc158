"""Each account is read as often as it is worth, within one budget: busy and failing accounts
often, quiet ones rarely, none past max_staleness (the shipping loop on simulated time); a
scheduled invocation reads within its budget, most valuable first."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.simulator import Simulator, VirtualClock
from pipelines.zap_runs.accounts import schedule
from pipelines.zap_runs.accounts.state import TABLE, read_states
from pipelines.zap_runs.cli.loop import Stop, run_loop
from pipelines.zap_runs.common import clock
from pipelines.zap_runs.common.sync_config import sync_config
from pipelines.zap_runs.output.summary import format_summary
from pipelines.zap_runs.warehouse.pipeline import logged_sync, sync

from .conftest import small_world
from .warehouse import FAST, assert_matches_truth, duckdb_pipeline


def entries(sim: Simulator) -> list[dict]:
    return [{"name": name, "access_token": sim.accounts[name].token} for name in sim.accounts]


def test_busy_and_failing_accounts_are_read_more_often_none_past_max_staleness(tmp_path):
    # A fixed start: the worlds' runs follow the hour of the day (the counts below hold with a
    # margin from any hour; fixed, they are the same on every machine).
    virtual = VirtualClock(datetime(2026, 11, 2, 12, tzinfo=UTC))
    worlds = {"busy": small_world(seed=1, days=1, clock=virtual, runs_per_day=2000),
              "failing": small_world(seed=2, days=1, clock=virtual, runs_per_day=60,
                                     error_scale=3.0, streaks_per_week=60),
              "calm": small_world(seed=3, days=1, clock=virtual, runs_per_day=60, error_scale=0.0),
              "quiet1": small_world(seed=4, days=1, clock=virtual, runs_per_day=3),
              "quiet2": small_world(seed=5, days=1, clock=virtual, runs_per_day=3)}
    sim = Simulator(accounts=list(worlds.items()), clock=virtual, rate_limit=None).start()
    pipeline = duckdb_pipeline(tmp_path / "s.duckdb")
    config = sync_config()
    args = {"base_url": sim.base_url, "accounts": entries(sim), "backoff_base": 0.01,
            "max_staleness_hours": 2.0}
    reads: dict[str, list[datetime]] = defaultdict(list)
    halt = Stop()
    try:
        with clock.use(virtual):
            # Caught up first: every account read once, unpaced.
            logged_sync(pipeline, config, all_accounts=True, requests_per_minute=0, **args)
            start = virtual.now()
            end = start + timedelta(hours=3)

            def after_round(result, _seconds: float) -> None:
                for outcome in result.accounts if result is not None else []:
                    if outcome.result == "success":
                        reads[outcome.account].append(outcome.started_at)
                if virtual.now() >= end:
                    halt.set()

            # Thirty requests an hour: the budget binds (reading everyone every round costs
            # about five times more).
            run_loop(pipeline, config, load_every=600, stop=halt, after_round=after_round,
                     requests_per_minute=0.5, **args)
        count = {name: len(reads[name]) for name in worlds}
        assert count["busy"] >= 3 * max(count["quiet1"], count["quiet2"]), count
        assert count["failing"] > count["calm"], count
        assert min(count.values()) >= 1, count
        for name in worlds:  # never unread longer than max_staleness (and a round to read it)
            times = [start, *reads[name], end]
            gap = max(b - a for a, b in zip(times, times[1:], strict=False))
            assert gap <= timedelta(hours=2, minutes=10), (name, gap)
        # Every account's data is whole, however rarely it was read.
        with clock.use(virtual):
            sync(pipeline, all_accounts=True, requests_per_minute=0, **args)
        for name, world in worlds.items():
            assert_matches_truth(pipeline, world.truth(), account=name)
    finally:
        sim.stop()


def test_an_invocation_reads_within_its_budget_and_the_rest_next_time(tmp_path):
    virtual = VirtualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))
    worlds = {f"u{i}": small_world(seed=40 + i, days=1, clock=virtual, runs_per_day=200)
              for i in range(6)}
    sim = Simulator(accounts=list(worlds.items()), clock=virtual, rate_limit=None).start()
    pipeline = duckdb_pipeline(tmp_path / "b.duckdb")
    args = {**FAST, "base_url": sim.base_url, "accounts": entries(sim)}
    with clock.use(virtual):
        read_in_budgets(virtual, sim, pipeline, worlds, args)


def read_in_budgets(virtual, sim, pipeline, worlds, args) -> None:
    try:
        sync(pipeline, all_accounts=True, **args)  # caught up
        virtual.advance(timedelta(hours=1))
        # 600 a minute for 0.01 minutes: 6 requests a pass, fewer than six accounts take.
        budget = {**args, "requests_per_minute": 600, "read_budget_minutes": 0.01}
        first = sync(pipeline, **budget)
        read = {a.account for a in first.accounts if a.result == "success"}
        assert first.due == 6 and 0 < len(read) < 6, first.accounts
        assert first.requests < 6 + max(a.requests for a in first.accounts)
        line = format_summary(first).splitlines()[2]
        assert f"accounts   {len(first.accounts)} read of 6 (6 due" in line, line
        seen = set(read)
        for _ in range(5):
            seen |= {a.account for a in sync(pipeline, **budget).accounts if a.result == "success"}
            if seen == set(worlds):
                break
        assert seen == set(worlds), "the accounts left are read by the next invocations"
        everyone = sync(pipeline, **{**args, "all_accounts": True})
        assert {a.account for a in everyone.accounts} == set(worlds) and everyone.due is None
        for name, world in worlds.items():
            assert_matches_truth(pipeline, world.truth(), account=name)
    finally:
        sim.stop()


def test_state_rows_of_the_layout_before_schedules_are_read_and_kept(past_clock, tmp_path):
    """State rows from before schedules (their schedule columns NULL once dlt adds them, no
    schedule in the state): every account is due, and its state reads back as it was."""
    worlds = {f"o{i}": small_world(seed=60 + i, days=1, clock=past_clock, runs_per_day=30)
              for i in range(3)}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    pipeline = duckdb_pipeline(tmp_path / "u.duckdb")
    args = {**FAST, "base_url": sim.base_url, "accounts": entries(sim)}
    try:
        sync(pipeline, **args)
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE)
            client.execute_sql(f"update {table} set last_read_at = null, next_due_at = null, "
                               "due_reason = null, worth = null, requests_per_read = null")
        before = read_states(pipeline, worlds)
        for state in before.values():
            state.pop("schedule")
        with pipeline.sql_client() as client:
            for name, state in before.items():
                client.execute_sql(f"update {table} set state = %s where account_id = %s",
                                   json.dumps(state), name)
        again = sync(pipeline, **args)
        assert again.due == 3 and {a.result for a in again.accounts} == {"success"}
        after = read_states(pipeline, worlds)
        for name in worlds:
            assert after[name]["cursor"] >= before[name]["cursor"]
            assert after[name]["schedule"]["last_read"]
            assert_matches_truth(pipeline, worlds[name].truth(), account=name)
    finally:
        sim.stop()


@pytest.mark.parametrize("budget,expected", [(None, 0.0), (10.0, None)])
def test_the_plan_spends_the_budget_and_caps_at_max_staleness(budget, expected):
    now = datetime(2026, 12, 1, tzinfo=UTC)
    busy = schedule.Entry("busy", now, cost=2.0, worth=1.0)
    quiet = schedule.Entry("quiet", now, cost=1.0, worth=schedule.FLOOR)
    p = schedule.plan([busy, quiet], budget, timedelta(hours=6))
    if expected is not None:  # no budget: every account as often as allowed
        assert p.scale == expected and p.interval(busy) == timedelta(0)
        return
    spent = sum(e.cost / (p.interval(e).total_seconds() / 3600) for e in (busy, quiet))
    assert spent == pytest.approx(budget, rel=0.01)
    assert p.interval(busy) < timedelta(hours=1)
    assert timedelta(hours=6) * (1 - schedule.JITTER) <= p.interval(quiet) <= timedelta(hours=6)
    listed, due = schedule.order([busy, quiet], p, now + timedelta(hours=1))
    assert [e.name for e in listed][:due] == ["busy"]


def test_accounts_read_together_never_pass_max_staleness_however_busy_the_others():
    """A catch-up read 400 quiet accounts at once: they fall due together, while 20 busy ones
    could take the whole budget. Rounds of a minute, each reading in order what its budget
    allows (the shipping plan and order): no account goes unread past max_staleness."""
    start = datetime(2026, 12, 1, tzinfo=UTC)
    longest, rate = timedelta(hours=6), 180.0  # requests an hour: the 400 need 67 of them
    entries = [schedule.Entry(f"q{i}", start, cost=1.5, worth=schedule.FLOOR) for i in range(400)]
    entries += [schedule.Entry(f"b{i}", start, cost=2.0, worth=2.0) for i in range(20)]
    last = {e.name: start for e in entries}
    worst = timedelta(0)
    now = start
    while now < start + timedelta(hours=14):
        now += timedelta(minutes=1)
        p = schedule.plan(entries, rate, longest, timedelta(minutes=1))
        listed, _ = schedule.order(entries, p, now)
        budget = rate / 60
        for e in listed:
            if budget < e.cost:
                break
            budget -= e.cost
            worst = max(worst, now - last[e.name])
            e.last_read = last[e.name] = now
    worst = max(worst, *(now - t for t in last.values()))
    assert worst <= longest, worst
    busy = schedule.plan(entries, rate, longest, timedelta(minutes=1)).interval(entries[-1])
    assert busy < timedelta(hours=1), "the busy ones still get their share"
