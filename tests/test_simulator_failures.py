"""The simulator misbehaves on demand: auth, scopes, rate limits, 5xx, HTML, truncation, hangs."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipelines.simulator import Faults

from .contract import ERROR


def get(sim, token=None, timeout=10.0, **params):
    headers = {} if token == "" else {"Authorization": f"Bearer {token or sim.token}"}
    return httpx.get(sim.base_url + "/v2/zap-runs", params=params, headers=headers, timeout=timeout)


def test_401_without_or_with_a_wrong_token(make_simulator):
    sim = make_simulator()
    for token in ("", "not-a-token"):
        response = get(sim, token=token)
        assert response.status_code == 401
        ERROR.validate(response.json())


def test_403_for_a_token_without_the_zap_runs_scope(make_simulator):
    sim = make_simulator()
    token = sim.tokens.issue_access(scopes=("zap",))
    response = get(sim, token=token)
    assert response.status_code == 403
    ERROR.validate(response.json())
    assert "zap:runs" in response.json()["errors"][0]["detail"]


def test_rate_limit_then_cooldown(make_simulator):
    # A window wide enough that six requests fit in it on a busy machine; short enough to wait out.
    sim = make_simulator(rate_limit=5, rate_window=3.0, cooldown=0.4)
    statuses = [get(sim).status_code for _ in range(6)]
    assert statuses[:5] == [200] * 5 and statuses[5] == 429
    refused = get(sim)
    assert refused.status_code == 429  # still cooling down, though the window has room soon
    ERROR.validate(refused.json())
    assert int(refused.headers["Retry-After"]) >= 0
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["X-RateLimit-Limit"]) == 5
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(time.time())
    deadline = time.monotonic() + 15
    while get(sim).status_code == 429:  # polls until the cooldown and the window end, bounded
        assert time.monotonic() < deadline, "cooldown never ended"
    assert get(sim).status_code == 200


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
def test_503_and_429_carry_retry_after_in_both_forms(make_simulator, fmt):
    sim = make_simulator(faults=Faults(script=[503, 429], retry_after_format=fmt,
                                       fault_retry_after=30))
    for expected in (503, 429):
        response = get(sim)
        assert response.status_code == expected
        ERROR.validate(response.json())
        value = response.headers["Retry-After"]
        if fmt == "seconds":
            assert value == "30"
        else:
            when = email.utils.parsedate_to_datetime(value)
            assert 20 <= (when - datetime.now(UTC)).total_seconds() <= 31
    assert get(sim).status_code == 200


RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def one_of_each_answer(sim) -> list[httpx.Response]:
    """GET /v2/zap-runs answered every way it can be: faults, 200, cut 200, 400, 401 and 403."""
    sim.faults.script = [500, 502, 503, 429]
    responses = [get(sim) for _ in range(4)]
    responses += [get(sim), get(sim, from_date="yesterday"), get(sim, token="not-a-token"),
                  get(sim, token=sim.tokens.issue_access(scopes=("zap",)))]
    sim.faults.truncate_rate = 1.0
    responses.append(get(sim))
    assert [r.status_code for r in responses] == [500, 502, 503, 429, 200, 400, 401, 403, 200]
    return responses


def test_without_rate_limiting_no_answer_states_a_limit(make_simulator):
    for response in one_of_each_answer(make_simulator(rate_limit=None)):
        assert not set(RATE_HEADERS) & set(response.headers), response.status_code


def test_with_rate_limiting_every_answer_counts_down_the_same_window(make_simulator):
    sim = make_simulator(rate_limit=50, rate_window=60)
    started = int(time.time())
    responses = one_of_each_answer(sim)
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"50"}
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in responses]
    assert remaining == list(range(49, 49 - len(responses), -1))
    resets = [int(r.headers["X-RateLimit-Reset"]) for r in responses]
    assert max(resets) - min(resets) <= 1  # the window's first request leaves it at one time
    assert started + 58 <= min(resets) and max(resets) <= int(time.time()) + 61


def test_injected_500_html_and_truncated_bodies(make_simulator):
    sim = make_simulator(faults=Faults(script=[500, 502]))
    first = get(sim)
    assert first.status_code == 500
    ERROR.validate(first.json())
    html = get(sim)
    assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
    sim.faults.truncate_rate = 1.0
    cut = get(sim)
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        cut.json()


def test_hangs_and_slow_responses(make_simulator):
    sim = make_simulator(faults=Faults(timeout_rate=1.0, hang_seconds=1.0))
    with pytest.raises(httpx.ReadTimeout):
        get(sim, timeout=0.3)
    sim.faults.timeout_rate, sim.faults.slow_seconds = 0.0, 0.3
    started = time.monotonic()
    assert get(sim).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_short_pages_dropped_links_and_inflated_count(make_simulator):
    sim = make_simulator(faults=Faults(short_page_rate=1.0, drop_next_rate=1.0, inflate_count=9,
                                       body_shape="object"))
    page = get(sim, limit=50).json()
    assert 1 <= len(page["data"]) < 50
    assert page["links"]["next"] is None
    assert page["meta"]["count"] > len(page["data"])


def test_oauth_refresh_rotates_and_tokens_expire(make_simulator, past_clock):
    from .conftest import small_world

    sim = make_simulator(small_world(clock=past_clock), access_ttl=timedelta(hours=1))
    refresh = sim.tokens.issue_refresh()
    form = {"grant_type": "refresh_token", "refresh_token": refresh,
            "client_id": "sim-client", "client_secret": "sim-secret"}
    granted = httpx.post(sim.base_url + "/oauth/token/", data=form)
    assert granted.status_code == 200
    body = granted.json()
    assert body["refresh_token"] != refresh and body["expires_in"] == 3600
    assert get(sim, token=body["access_token"]).status_code == 200
    reused = httpx.post(sim.base_url + "/oauth/token/", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    wrong_client = httpx.post(sim.base_url + "/oauth/token/",
                              data={**form, "refresh_token": body["refresh_token"],
                                    "client_secret": "nope"})
    assert wrong_client.status_code == 401
    past_clock.advance(timedelta(hours=1, seconds=1))
    assert get(sim, token=body["access_token"]).status_code == 401
