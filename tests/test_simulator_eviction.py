"""Idle worlds are evicted and built again the same, over real HTTP; pinned worlds stay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipelines.simulator import ManualClock, Simulator, VirtualClock, World, WorldConfig
from pipelines.simulator.eviction import estimated_bytes
from pipelines.simulator.lifecycle import Run

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Everything that changes a run after it was first seen: open runs that settle, statuses the
# contract does not list, long Delays, replays hours and days later, streaks; and a retention
# shorter than history plus the span, so runs are purged while the test watches.
LIVELY = WorldConfig(seed=11, zaps=6, runs_per_day=900, history_days=1.0, retention_days=1.2,
                     unlisted_open_rate=0.1, unlisted_settle_hours=3, delayed_runs=40,
                     delay_min_days=0.1, delay_max_days=0.5, late_replay_share=0.3,
                     late_replay_max_days=1.0, streaks_per_week=14)


def small(seed: int) -> WorldConfig:
    return WorldConfig(seed=seed, zaps=3, runs_per_day=300, history_days=1)


@pytest.fixture
def serve() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(**kwargs: object) -> Simulator:
        kwargs.setdefault("rate_limit", None)
        sim = Simulator(**kwargs)
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


def listing(sim: Simulator, token: str) -> list[dict]:
    """Every run the account's token reads now, newest first, as the API shows it."""
    response = httpx.get(sim.base_url + "/v2/zap-runs", timeout=30,
                         params={"limit": 100000, "from_date": "2000-01-01T00:00:00Z"},
                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()[0]["data"]


def refresh(sim: Simulator, refresh_token: str) -> dict:
    granted = httpx.post(sim.base_url + "/oauth/token/", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": "sim-client", "client_secret": "sim-secret"})
    assert granted.status_code == 200, granted.text
    return granted.json()


def resident_bytes(sim: Simulator) -> int:
    worlds = [account.resident() for account in sim.accounts.values()]
    return sum(estimated_bytes(world) for world in worlds if world is not None)


def test_an_evicted_world_is_built_again_the_same_as_one_kept_across_status_changes(serve):
    clock = ManualClock(START)
    sim = serve(accounts=[("kept", LIVELY), ("evicted", LIVELY)], clock=clock, world_memory_mb=None)
    kept, evicted = sim.accounts["kept"], sim.accounts["evicted"]
    first_seen: dict[str, str] = {}
    changed_after_seen: set[str] = set()
    purged: set[str] = set()
    for step in range(16):  # twelve hours in steps of 45 minutes
        if step:
            clock.advance(timedelta(minutes=45))
            assert evicted.evict() and not evicted.built
        ours, theirs = listing(sim, evicted.token), listing(sim, kept.token)
        assert ours == theirs, f"the rebuilt world differs {step * 45} minutes on"
        now = {run["id"]: run["status"] for run in ours}
        purged |= first_seen.keys() - now.keys()
        changed_after_seen |= {i for i, status in now.items() if first_seen.get(i, status) != status}
        for run_id, status in now.items():
            first_seen.setdefault(run_id, status)
    assert evicted.builds == 16 and kept.builds == 1
    assert evicted.built_at == kept.built_at == START, "built as of the first request, remembered"
    assert len(changed_after_seen) > 100, "runs changed status after they were first served"
    assert purged, "runs were purged while the test watched"


def test_the_memory_bound_evicts_the_least_recently_asked_for(serve):
    clock = ManualClock(START)
    # About four of these worlds fit (each ~300 runs).
    bound_mb = 4.5 * estimated_bytes(World(small(0), clock)) / 2**20
    sim = serve(accounts=[(f"a{i:02d}", small(i)) for i in range(12)], clock=clock,
                world_memory_mb=bound_mb)
    first: dict[str, list[dict]] = {}
    asked: list[str] = []
    for name in [*sim.accounts, *sim.accounts, "a03", "a11", "a00"]:
        served = listing(sim, sim.accounts[name].token)
        assert first.setdefault(name, served) == served, "built again, the same"
        asked.append(name)
        built = [n for n, account in sim.accounts.items() if account.built]
        assert resident_bytes(sim) <= bound_mb * 2**20 and sim.worlds.estimated_mb <= bound_mb
        recent = list(dict.fromkeys(reversed(asked)))[:len(built)]
        assert sorted(built) == sorted(recent), "the most recently asked for stay built"
        assert len(built) >= min(3, len(set(asked))), "no more are evicted than the bound needs"
    builds = sum(account.builds for account in sim.accounts.values())
    assert sim.worlds.evictions == builds - len(built) and builds > 24


def test_a_pinned_world_is_never_evicted(serve):
    clock = ManualClock(START)
    handed_in = World(small(1), clock)
    sim = serve(world=handed_in, accounts=[("changed", small(2)), ("plain", small(3)),
                                           ("other", small(4))],
                clock=clock, world_memory_mb=0)  # every request evicts every other world it may
    changed, plain = sim.accounts["changed"], sim.accounts["plain"]
    world = changed.world
    world.add(Run(id="00000000-0000-4000-8000-0000000000c1", zap_id=1, zap_title="by hand",
                  occurred_at=START - timedelta(minutes=5), status="success", start_time=None,
                  end_time=None, steps=None, data_in={}, data_out={}))
    assert changed.pinned and sim.accounts["default"].pinned and not plain.pinned
    assert changed.built and handed_in.pinned is False, "a World handed in is pinned by its account"
    for _ in range(3):
        for account in sim.accounts.values():
            listing(sim, account.token)
    assert sim.accounts["default"].world is handed_in and changed.world is world
    assert not changed.evict() and not sim.accounts["default"].evict()
    assert "00000000-0000-4000-8000-0000000000c1" in {run["id"] for run in listing(sim, changed.token)}
    assert plain.builds == 3 and sim.accounts["other"].builds == 3, "unpinned: evicted each round"
    assert len(sim.worlds) == 1 and sim.worlds.evictions == 5  # 'changed' is not counted


def test_tokens_and_revocations_live_outside_the_world(serve):
    clock = ManualClock(START)
    sim = serve(accounts=[("a", small(1)), ("b", small(2))], clock=clock, world_memory_mb=None)
    a, b = sim.accounts["a"], sim.accounts["b"]
    before, before_b = listing(sim, a.token), listing(sim, b.token)
    refresh_b = sim.issue_refresh("b")
    sim.revoke("a")
    assert a.evict() and b.evict()
    refused = httpx.get(sim.base_url + "/v2/zap-runs", headers={"Authorization": f"Bearer {a.token}"})
    assert refused.status_code == 401 and not a.built, "a revoked token builds no world"
    assert listing(sim, sim.issue_access("a")) == before
    granted = refresh(sim, refresh_b)
    assert not b.built
    assert listing(sim, granted["access_token"]) == before_b
    assert b.evict()
    rotated = refresh(sim, granted["refresh_token"])  # the rotated token, kept across evictions
    assert listing(sim, rotated["access_token"]) == before_b


def test_a_world_is_built_as_of_a_past_instant_never_a_future_one():
    clock = VirtualClock(START)
    with pytest.raises(ValueError, match="built as of now or earlier"):
        World(small(1), clock, built_at=START + timedelta(seconds=1))
    kept = World(small(1), clock)
    clock.sleep(3 * 3600)
    assert World(small(1), clock, built_at=START).truth() == kept.truth()
    assert World(small(1), clock).truth() != kept.truth(), "built as of now: another history"
