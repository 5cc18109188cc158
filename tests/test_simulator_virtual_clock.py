"""The virtual clock: time moves only when told, sleeps return at once, the simulator follows it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipelines.simulator import ManualClock, Simulator, VirtualClock, WorldConfig

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_sleep_moves_the_clock_and_returns_at_once():
    clock = VirtualClock(START)
    began = time.monotonic()
    clock.sleep(3600)
    clock.sleep(0.25)
    assert time.monotonic() - began < 0.5, "a virtual hour takes no real time"
    assert clock.now() == START + timedelta(hours=1, seconds=0.25)
    assert clock.monotonic() == 3600.25 and clock.time() == START.timestamp() + 3600.25
    assert clock.advance(timedelta(minutes=1)) == START + timedelta(hours=1, minutes=1, seconds=0.25)
    assert clock.monotonic() == 3660.25
    assert isinstance(clock, ManualClock), "a ManualClock that sleeps: usable wherever one is"


def test_it_stands_still_unless_told():
    clock = VirtualClock(START)
    time.sleep(0.01)
    assert clock.now() == START and clock.monotonic() == 0.0


def test_sleeps_from_many_threads_are_all_counted():
    clock = VirtualClock(START)
    threads = [threading.Thread(target=lambda: [clock.sleep(0.5) for _ in range(1000)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() == 4000.0


@pytest.mark.parametrize("move,message", [
    (lambda clock: clock.sleep(-1), "cannot sleep -1 seconds"),
    (lambda clock: clock.sleep(float("nan")), "cannot sleep nan seconds"),
    (lambda clock: clock.advance(timedelta(seconds=-1)), "never goes backwards"),
    (lambda clock: clock.set(START - timedelta(seconds=1)), "never goes backwards"),
])
def test_it_never_goes_backwards(move, message):
    clock = VirtualClock(START)
    with pytest.raises(ValueError, match=message):
        move(clock)
    assert clock.now() == START


def test_it_starts_at_an_aware_utc_time():
    with pytest.raises(ValueError, match="aware UTC time"):
        VirtualClock(datetime(2026, 11, 2, 9, 0))
    assert VirtualClock().now().tzinfo is not None


def test_the_simulator_lives_on_it_rate_rule_and_all():
    clock = VirtualClock(START)
    sim = Simulator(accounts=[("a", WorldConfig(seed=3, zaps=3, runs_per_day=2400, history_days=1))],
                    clock=clock, rate_limit=2, rate_window=60, cooldown=60, partner_limit=None)
    sim.start()
    try:
        headers = {"Authorization": f"Bearer {sim.accounts['a'].token}"}

        def get() -> httpx.Response:
            return httpx.get(sim.base_url + "/v2/zap-runs", headers=headers, timeout=10,
                             params={"limit": 100000, "from_date": "2000-01-01T00:00:00Z"})

        first = get()
        assert [first.status_code, get().status_code] == [200, 200]
        refused = get()
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
        clock.sleep(30)
        assert get().status_code == 429, "still cooling down: 30 virtual seconds passed"
        began = time.monotonic()
        clock.sleep(31)  # the cooldown is over in virtual time, at once in real time
        later = get()
        assert later.status_code == 200 and time.monotonic() - began < 5
        assert int(later.headers["X-RateLimit-Reset"]) == int(START.timestamp()) + 61 + 60
        assert [r["at"] for r in sim.zap_run_requests()] == [0.0, 0.0, 0.0, 30.0, 61.0]
        clock.sleep(86400)  # a simulated day, in no real time
        a_day_on = get()
        newer = {run["id"] for run in a_day_on.json()[0]["data"]} - \
            {run["id"] for run in first.json()[0]["data"]}
        assert 1500 < len(newer) < 3300, "a day's runs arrived"
    finally:
        sim.stop()
