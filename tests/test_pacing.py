"""Pacing by the server's X-RateLimit-* headers: slower before a 429, never faster than the ceiling."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest

from pipelines.zap_runs.api.client import ZapierClient
from pipelines.zap_runs.api.pacing import CAP, POLL, Pacer, read_budget
from pipelines.zap_runs.api.paging import fetch_window

from .conftest import small_world

WALL = 1_800_000_000.0  # the local Unix time in the unit tests


class Clock:
    """A pacer's clock and sleep: sleeping moves the clock on, and nothing else happens."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()


def pacer_for(rate: float | None) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(rate, clock=clock, sleep=clock.sleep, wall=lambda: WALL + clock.now), clock


def rate(remaining, reset, limit="60") -> dict[str, str]:
    return {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset)}


def test_plenty_of_budget_runs_at_the_ceiling_never_faster():
    pacer, clock = pacer_for(60)
    for remaining in range(59, 29, -1):  # half the limit or more left: no header slows it
        pacer.answered(pacer.wait(), rate(remaining, 45.5))
    assert clock.sleeps == [pytest.approx(1.01)] * 29
    pacer, clock = pacer_for(None)
    for remaining in range(59, 29, -1):
        pacer.answered(pacer.wait(), rate(remaining, 45.5))
    assert clock.sleeps == [] and pacer.waited == 0


def test_an_empty_budget_waits_for_the_reset_counted_as_waited():
    pacer, clock = pacer_for(None)
    pacer.answered(pacer.wait(), rate(0, int(WALL) + 10))  # Unix time, truncated to the second
    pacer.wait()
    assert clock.sleeps == [pytest.approx(10 + 1 + 0.25)]  # the lost second and slack added
    assert pacer.waited == pytest.approx(11.25)


def test_a_small_budget_is_spread_evenly_to_the_reset_and_one_slot_kept():
    pacer, clock = pacer_for(None)
    starts = []
    # A server whose slots free at t=8: seconds-until counts down as the budget does.
    for remaining in (4, 3, 2, 1, 30, 29):
        ticket = pacer.wait()
        starts.append(clock.now)
        reset = 30 if remaining >= 30 else 8 - clock.now - 0.25
        pacer.answered(ticket, rate(remaining, f"{reset:.2f}"))
    assert starts == [pytest.approx(t) for t in (0, 2, 4, 6, 8, 8)]


def test_the_ceiling_holds_when_headers_allow_more():
    pacer, clock = pacer_for(30)  # 2.02 s apart
    pacer.answered(pacer.wait(), rate(0, "0.5"))  # empty, but free again long before the ceiling
    pacer.answered(pacer.wait(), rate(59, "0.5"))
    pacer.wait()
    assert clock.sleeps == [pytest.approx(2.02)] * 2


def test_a_bogus_reset_is_capped_and_logged_once(caplog):
    pacer, clock = pacer_for(None)
    with caplog.at_level(logging.WARNING, logger="pipelines.zap_runs.api.pacing"):
        for _ in range(2):
            pacer.answered(pacer.wait(), rate(0, int(WALL) + 86_400))  # a day away
    pacer.wait()
    assert clock.sleeps == [pytest.approx(CAP)] * 2 and CAP < 62
    assert len([r for r in caplog.records if "X-RateLimit-Reset" in r.message]) == 1


@pytest.mark.parametrize("headers", [
    {}, {"X-RateLimit-Remaining": "0"}, {"X-RateLimit-Reset": "30"},
    rate("none", 30), rate(0, "soon"), rate(-1, 30), rate(0, "nan"), rate(0, "-5"),
    rate(0, "inf"), {"X-RateLimit-Remaining": "0, 0", "X-RateLimit-Reset": "30"}],
    ids=["none", "no-reset", "no-remaining", "words", "soon", "negative", "nan",
         "past", "inf", "doubled"])
def test_missing_or_garbage_headers_leave_the_ceiling_alone(headers):
    pacer, clock = pacer_for(60)
    for _ in range(3):
        pacer.answered(pacer.wait(), headers)
    assert clock.sleeps == [pytest.approx(1.01)] * 2


def test_reset_forms():
    assert read_budget(rate(3, int(WALL) + 20), WALL).reset_in == pytest.approx(21.25)
    assert read_budget(rate(3, int(WALL * 1000) + 20_000), WALL).reset_in == pytest.approx(20.251)
    assert read_budget(rate(3, "20.5"), WALL).reset_in == pytest.approx(20.75)
    assert read_budget(rate(3, "20"), WALL).reset_in == pytest.approx(21.25)
    assert read_budget(rate(3, int(WALL) - 5), WALL).reset_in == pytest.approx(1.25)  # passed
    budget = read_budget({"x-ratelimit-remaining": " 7 ", "x-ratelimit-reset": "5"}, WALL)
    assert (budget.remaining, budget.limit) == (7, None)  # any case, no limit stated
    # The local clock five minutes ahead of the server's: its Reset, 20 s on in the server's
    # time, is in the past by the local clock; the server's Date tells how far off it is.
    server_now = int(WALL) - 300
    skewed = rate(0, server_now + 20)
    assert read_budget(skewed, WALL).reset_in == pytest.approx(1.25)
    assert read_budget(skewed | {"Date": _http_date(server_now)}, WALL).reset_in == \
        pytest.approx(21.25)
    assert read_budget(rate(0, int(WALL) + 20) | {"Date": _http_date(WALL - 1)},
                       WALL).reset_in == pytest.approx(21.25)  # a second off: the local clock


def _http_date(unix: float) -> str:
    return email.utils.formatdate(unix, usegmt=True)


def test_requests_in_flight_count_against_what_an_answer_says_is_left():
    """Two senders: an answer's Remaining does not show the requests still in flight."""
    pacer, clock = pacer_for(None)
    first = pacer.wait()
    pacer.answered(first, rate(1, "9.75", limit="2"))  # one left, a slot frees at t=10
    second = pacer.wait()  # goes at once: the one slot left
    third = pacer.wait()  # `second` unanswered: nothing left until the reset
    assert (clock.now, clock.sleeps) == (pytest.approx(10), [pytest.approx(10)])
    # Past the reset one slot is sure to be free, and `third` took it: the next waits for
    # an answer in flight to say more.
    clock.on_sleep = lambda: pacer.answered(third, rate(5, "30", limit="6"))
    fourth = pacer.wait()
    assert clock.sleeps[1:] == [POLL] and (second, third, fourth) == (2, 3, 4)
    # Answers without headers (a timeout, say) leave nothing to wait for: the ceiling rules.
    pacer, clock = pacer_for(None)
    pacer.answered(pacer.wait(), rate(0, "1.75"))
    lost = pacer.wait()
    clock.on_sleep = lambda: pacer.answered(lost, None)
    pacer.wait()
    assert clock.sleeps == [pytest.approx(2), POLL]


# --- against the simulator over HTTP ------------------------------------------------------

@pytest.mark.parametrize("headers", [True, False], ids=["headers-read", "headers-ignored"])
def test_a_budget_shared_with_other_traffic_never_runs_into_a_429(make_simulator, monkeypatch,
                                                                   headers):
    """The user's other traffic from the same IP has used 16 of 20; the sync needs 10 more.
    With the headers read it slows down in time; ignoring them (the same client otherwise)
    it is refused, so the headers are what spare it."""
    sim = make_simulator(rate_limit=20, rate_window=2.0, cooldown=0.5)
    for _ in range(16):
        assert sim.limiter.check("127.0.0.1")[0]
    client = ZapierClient(sim.base_url, sim.token, requests_per_minute=0, max_retries=8)
    if not headers:
        answered = client.pacer.answered
        monkeypatch.setattr(client.pacer, "answered", lambda ticket, _: answered(ticket, None))
    started = time.monotonic()
    for _ in range(10):
        assert len(client.get_runs({"limit": "1"}).data) == 1
    if headers:
        assert sim.limiter.refused == 0 and client.stats.rate_limited == 0
        assert client.pacer.waited > 1  # it did wait, and the progress display says so
    else:
        assert sim.limiter.refused > 0 and client.stats.rate_limited > 0
    assert time.monotonic() - started < 10


def test_look_ahead_paging_shares_a_tight_budget_without_a_429(make_simulator):
    """Paging with two requests in flight at once: each answer's Remaining is short of the
    other request, and the pacer allows for it."""
    world = small_world(seed=5, days=3)
    sim = make_simulator(world, rate_limit=20, rate_window=2.0, cooldown=30)
    for _ in range(14):
        sim.limiter.check("127.0.0.1")
    client = ZapierClient(sim.base_url, sim.token, requests_per_minute=0, max_retries=0)
    assert not client.paced  # no ceiling: paging guesses ahead, two requests in flight
    ids = [run.id for runs, _ in fetch_window(client, {}, page_limit=100, lookahead=True)
           for run in runs]
    assert sorted(ids) == sorted(world.truth()) and len(sim.requests) > 7
    assert sim.limiter.refused == 0 and client.stats.rate_limited == 0
    client.close()


def test_the_simulators_headers_slow_the_ceiling_only_when_the_budget_is_short(make_simulator):
    """Real answers, the pacer's time simulated: with plenty left the client runs exactly at its
    ceiling; once the other traffic has used most of the budget it spreads what is left."""
    sim = make_simulator(rate_limit=60, rate_window=60.0)
    client = ZapierClient(sim.base_url, sim.token, requests_per_minute=600)
    clock = Clock()
    client.pacer = Pacer(600, clock=clock, sleep=clock.sleep)  # the Reset is real Unix time
    for _ in range(20):
        client.get_runs({"limit": "1"})
    assert clock.sleeps == [pytest.approx(0.101)] * 19
    for _ in range(30):  # other traffic: 10 left
        sim.limiter.check("127.0.0.1")
    clock.sleeps.clear()
    for _ in range(5):
        client.get_runs({"limit": "1"})
    # 9, 8, 7 ... left, the oldest request leaves the 60 s window in about a minute.
    assert all(5 < slept < 62 / 5 for slept in clock.sleeps[1:])
    assert sim.limiter.refused == 0
    client.close()
