"""The HTTP client: retries with backoff and jitter, Retry-After in both forms, pacing, 4xx."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.simulator import Faults
from pipelines.zap_runs.api.client import ZapierClient, parse_page, retry_after
from pipelines.zap_runs.api.pacing import Pacer
from pipelines.zap_runs.common.errors import AuthError, BadRequestError, RetriesExhausted, ScopeError


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(sim, sleeps=None, **kwargs) -> ZapierClient:
    args = {"requests_per_minute": None, "max_retries": 5, "backoff_base": 1.0, **kwargs}
    return ZapierClient(sim.base_url, sim.token, sleep=sleeps if sleeps is not None else Sleeps(),
                        **args)


def test_5xx_and_html_pages_are_retried_with_exponential_backoff_and_jitter(make_simulator):
    sim = make_simulator(faults=Faults(script=[500, 502, 500, 500]))
    sleeps = Sleeps()
    page = client_for(sim, sleeps).get_runs({"limit": "5"})
    assert len(page.data) == 5
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps):
        ceiling = 1.0 * 2**attempt
        assert ceiling / 2 <= slept <= ceiling  # jittered within [half, full] of the backoff


def test_backoff_is_capped_and_retries_are_bounded(make_simulator):
    sim = make_simulator(faults=Faults(error_rate=1.0))
    sleeps = Sleeps()
    client = client_for(sim, sleeps, max_retries=3, backoff_base=10, backoff_max=15)
    with pytest.raises(RetriesExhausted, match="gave up after 3 retries"):
        client.get_runs({})
    assert len(sleeps) == 3 and max(sleeps) <= 15
    assert client.stats.requests == 4 and client.stats.retries == 3


def test_timeouts_are_retried(make_simulator):
    sim = make_simulator(faults=Faults(timeout_rate=1.0, hang_seconds=0.6))
    client = client_for(sim, timeout=0.2, max_retries=2)
    sim.faults.script = []
    started = time.monotonic()
    with pytest.raises(RetriesExhausted, match="timed out"):
        client.get_runs({})
    assert client.stats.requests == 3
    assert time.monotonic() - started < 3


def test_truncated_body_is_retried_then_succeeds(make_simulator):
    sim = make_simulator(faults=Faults(truncate_rate=1.0))
    sleeps = Sleeps()
    client = client_for(sim, sleeps)

    def heal(record):
        if len(sim.requests) >= 3:
            sim.faults.truncate_rate = 0.0

    sim.on_request = heal
    assert client.get_runs({"limit": "3"}).data
    assert client.stats.retries == 2


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_in_both_forms(make_simulator, fmt, status):
    sim = make_simulator(faults=Faults(script=[status], retry_after_format=fmt, fault_retry_after=7))
    sleeps = Sleeps()
    client = client_for(sim, sleeps)
    client.pacer = Pacer(None, sleep=sleeps)
    assert client.get_runs({}).data
    assert len(sleeps) == 1 and 5.5 <= sleeps[0] <= 7.0
    assert client.stats.rate_limited == (1 if status == 429 else 0)


def test_missing_retry_after_waits_60_seconds(make_simulator):
    sim = make_simulator(faults=Faults(script=[429], retry_after_format="none"))
    sleeps = Sleeps()
    client = client_for(sim, sleeps)
    client.pacer = Pacer(None, sleep=sleeps)
    client.get_runs({})
    assert sleeps == [pytest.approx(60.0, abs=0.5)]


def test_retry_after_parsing():
    assert retry_after("12", 60) == 12
    future = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after(future, 60) <= 30
    assert retry_after("soon", 60) == 60 and retry_after(None, 60) == 60


def test_pacing_spaces_requests_under_the_rate():
    now = [0.0]
    pacer = Pacer(60, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    starts = []
    for _ in range(5):
        pacer.wait()
        starts.append(now[0])
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(1.0 <= gap <= 1.05 for gap in gaps)


def test_paced_client_never_meets_a_429(make_simulator):
    # 10 requests per 0.5 s window is 1200/min; pace at 1000/min: no 429 in 30 requests.
    sim = make_simulator(rate_limit=10, rate_window=0.5, cooldown=5)
    client = ZapierClient(sim.base_url, sim.token, requests_per_minute=1000, max_retries=0)
    for _ in range(30):
        client.get_runs({"limit": "1"})
    assert client.stats.rate_limited == 0
    assert all(r["status"] == 200 for r in sim.requests)


@pytest.mark.parametrize("token_scopes,error,needle", [
    (None, AuthError, "401"), (("zap",), ScopeError, "zap:runs scope")])
def test_401_and_403_are_not_retried(make_simulator, token_scopes, error, needle):
    sim = make_simulator()
    token = "wrong" if token_scopes is None else sim.tokens.issue_access(scopes=token_scopes)
    client = ZapierClient(sim.base_url, token, requests_per_minute=None)
    with pytest.raises(error, match=needle) as raised:
        client.get_runs({})
    assert token not in str(raised.value)
    assert len(sim.requests) == 1


def test_400_names_the_request(make_simulator):
    sim = make_simulator()
    client = client_for(sim)
    with pytest.raises(BadRequestError, match="from_date=nope"):
        client.get_runs({"from_date": "nope"})


def test_both_body_shapes_parse_the_same():
    run = b'{"id":"a","zap_id":1,"status":"success","data_in":{"x": [1, 2]}}'
    obj = b'{"links":{"next":null},"meta":{"count":1,"limit":10},"data":[' + run + b']}'
    arr = b"[" + obj + b"]"
    assert parse_page(obj) == parse_page(arr)
    page = parse_page(obj)
    assert (page.count, page.data[0].id) == (1, "a")
    assert bytes(page.data[0].data_in) == b'{"x": [1, 2]}'  # the text as sent
    assert len(page.data[0].data_out) == 0  # absent, not JSON null
    for bad in (b"<html>", b'{"data": 5}', b'[{"data":[{"no_id":1}]}]', b'{"links":'):
        with pytest.raises(ValueError):
            parse_page(bad)
