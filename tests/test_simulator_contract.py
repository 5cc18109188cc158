"""Property: whatever parameters a client sends, the simulator answers only documented responses."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.simulator import Simulator

from .conftest import small_world
from .contract import ERROR, PAGE, STATUSES

dates = st.one_of(
    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat()),
    st.dates().map(str),
    st.text(max_size=30),
)
ints = st.one_of(st.integers(-5, 10_000).map(str), st.text(max_size=6))
status_lists = st.lists(st.one_of(st.sampled_from(sorted(STATUSES)), st.text(max_size=10)),
                        max_size=4).map(",".join)
params = st.fixed_dictionaries({}, optional={
    "from_date": dates, "to_date": dates, "limit": ints, "offset": ints,
    "zap_id": ints, "statuses": status_lists, "search": st.text(max_size=200),
})

@pytest.fixture(scope="module")
def sim():
    with Simulator(small_world(seed=8, days=3), rate_limit=None) as running:
        yield running


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=params)
def test_generated_parameters_get_only_documented_responses(sim, query):
    response = httpx.get(sim.base_url + "/v2/zap-runs", params=query, timeout=10,
                         headers={"Authorization": f"Bearer {sim.token}"})
    assert response.status_code in (200, 400), response.text[:300]
    body = response.json()
    if response.status_code == 200:
        PAGE.validate(body)
        page = body[0]
        assert page["meta"]["count"] >= len(page["data"])
        if "statuses" in query:
            wanted = set(query["statuses"].split(","))
            assert all(run["status"] in wanted for run in page["data"])
    else:
        ERROR.validate(body)
