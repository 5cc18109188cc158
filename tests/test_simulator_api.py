"""The simulator's GET /v2/zap-runs: parameters, pages, links and the contract, over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pipelines.simulator import Faults

from .conftest import small_world
from .contract import ERROR, PAGE


def get(sim, token=None, **params):
    headers = {"Authorization": f"Bearer {token or sim.token}"}
    return httpx.get(sim.base_url + "/v2/zap-runs", params=params, headers=headers, timeout=10)


def page_of(response) -> dict:
    body = response.json()
    PAGE.validate(body)
    return body[0] if isinstance(body, list) else body


def iso(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_default_page_is_contract_shaped_with_ten_runs(make_simulator):
    sim = make_simulator()
    response = get(sim)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list) and len(body) == 1  # the contract's array-wrapped page
    page = page_of(response)
    assert page["meta"]["limit"] == 10 and page["meta"]["offset"] == 0
    assert len(page["data"]) == 10


def test_without_from_date_returns_the_last_30_days(make_simulator, past_clock):
    world = small_world(days=40, clock=past_clock)
    sim = make_simulator(world)
    now = past_clock.now()
    expected = world.truth(now - timedelta(days=30))
    page = get(sim, limit=100000).json()[0]  # 9,000 runs: schema-checking each takes half a minute
    assert page["meta"]["count"] == len(expected)
    assert {r["id"] for r in page["data"]} == set(expected)
    assert len(world.truth()) > len(expected)


def test_from_date_inclusive_to_date_exclusive(make_simulator):
    world = small_world()
    sim = make_simulator(world)
    runs = sorted(world.runs, key=lambda r: r.occurred_at)
    a, b = runs[100], runs[200]
    page = page_of(get(sim, from_date=iso(a.occurred_at), to_date=iso(b.occurred_at), limit=1000))
    ids = {r["id"] for r in page["data"]}
    assert a.id in ids and b.id not in ids
    assert all(a.occurred_at <= world.run(i).occurred_at < b.occurred_at for i in ids)


def test_offset_limit_and_links_keep_filters(make_simulator):
    world = small_world()
    sim = make_simulator(world)
    zap = world.zaps[0].id
    first = page_of(get(sim, zap_id=zap, limit=5, offset=0))
    assert first["links"]["prev"] is None
    nxt = urlsplit(first["links"]["next"])
    assert nxt.scheme == "http" and nxt.netloc  # absolute
    query = parse_qs(nxt.query)
    assert query["zap_id"] == [str(zap)] and query["offset"] == ["5"] and query["limit"] == ["5"]
    second = page_of(httpx.get(first["links"]["next"], headers={"Authorization": f"Bearer {sim.token}"}))
    assert second["meta"]["offset"] == 5 and second["links"]["prev"]
    assert not {r["id"] for r in first["data"]} & {r["id"] for r in second["data"]}
    assert all(r["zap_id"] == zap for r in first["data"] + second["data"])


def test_statuses_filter_and_search(make_simulator):
    world = small_world()
    sim = make_simulator(world)
    page = page_of(get(sim, statuses="error,halted", limit=100000))
    assert page["data"] and {r["status"] for r in page["data"]} <= {"error", "halted"}
    title = next(z.title for z in world.zaps if z.title)
    word = title.split()[0]
    found = page_of(get(sim, search=word, limit=100000))["data"]
    assert found and all(word.casefold() in (r["zap_title"] or "").casefold()
                         or word.casefold() in str(r["data_in"]).casefold()
                         or word.casefold() in str(r["data_out"]).casefold() for r in found)
    by_data = page_of(get(sim, search="user1@example.com", limit=100000))["data"]
    assert by_data and all("user1@example.com" in str(r["data_in"]) + str(r["data_out"])
                           for r in by_data)


@pytest.mark.parametrize("params,parameter", [
    ({"from_date": "yesterday"}, "from_date"),
    ({"to_date": "2024-13-45"}, "to_date"),
    ({"offset": "-1"}, "offset"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"statuses": "error,exploded"}, "statuses"),
    ({"search": "x" * 151}, "search"),
    ({"zap_id": "abc"}, "zap_id"),
    # Valid ISO 8601, but past what a UTC datetime holds once the offset is applied.
    ({"from_date": "9999-12-31T23:59:59-05:00"}, "from_date"),
    ({"to_date": "9999-12-31T23:59:59-05:00"}, "to_date"),
    ({"from_date": "0001-01-01T00:00:00+05:00"}, "from_date"),
    ({"to_date": "0001-01-01T03:00:00+04:00", "from_date": "2026-01-01"}, "to_date"),
])
def test_malformed_parameters_get_400_error_response(make_simulator, params, parameter):
    sim = make_simulator()
    response = get(sim, **params)
    assert response.status_code == 400
    ERROR.validate(response.json())
    assert response.json()["errors"][0]["source"]["parameter"] == parameter


def test_out_of_range_date_says_so_and_the_edges_of_the_range_are_fine(make_simulator):
    sim = make_simulator()
    refused = get(sim, to_date="9999-12-31T23:59:59-05:00")
    assert "to_date is out of range" in refused.json()["errors"][0]["detail"]
    for params in ({"from_date": "9999-12-31T23:59:59Z"}, {"to_date": "0001-01-01T00:00:00Z"},
                   {"from_date": "9999-12-31T23:59:59+05:00"}):
        page = page_of(get(sim, **params))
        assert page["meta"]["count"] == 0 and page["data"] == []
    page = page_of(get(sim, from_date="0001-01-01T00:00:00-05:00", to_date="9999-12-31T23:59:59Z"))
    assert page["meta"]["count"] == len(sim.world.truth())


def test_search_of_150_characters_is_fine(make_simulator):
    assert get(make_simulator(), search="x" * 150).status_code == 200


def test_body_shape_object_and_silent_limit_cap(make_simulator):
    sim = make_simulator(faults=Faults(body_shape="object", max_limit=7))
    response = get(sim, limit=100)
    body = response.json()
    assert isinstance(body, dict)
    PAGE.validate(body)
    assert len(body["data"]) == 7 and body["meta"]["limit"] == 7


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_order_knob(make_simulator, order):
    world = small_world()
    sim = make_simulator(world, faults=Faults(order=order))
    times = [world.run(r["id"]).occurred_at for r in page_of(get(sim, limit=50))["data"]]
    assert times == sorted(times, reverse=(order == "desc"))


def test_unknown_route_is_404_json(make_simulator):
    sim = make_simulator()
    response = httpx.get(sim.base_url + "/v2/nothing")
    assert response.status_code == 404
    ERROR.validate(response.json())
