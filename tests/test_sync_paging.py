"""Pagination survives what real servers do: caps, shapes, short and shifted pages, bad counts."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from pipelines.simulator import Faults
from pipelines.zap_runs.api.client import ZapierClient
from pipelines.zap_runs.api.paging import fetch_window

from .conftest import small_world
from .warehouse import assert_matches_truth, duckdb_pipeline, run_sync


@pytest.mark.parametrize("faults", [
    Faults(max_limit=13),
    Faults(body_shape="object", short_page_rate=0.5),
    Faults(drop_next_rate=1.0),
    Faults(order="shuffled", overlap_rate=0.3),
    Faults(order="asc", max_limit=29, short_page_rate=0.3, drop_next_rate=0.5),
], ids=["capped", "short", "no-next-links", "shifted", "all"])
def test_every_run_arrives_once(make_simulator, past_clock, tmp_path, faults):
    # A still clock: on the real one a run may be triggered between the sync's pinned to_date
    # and the truth taken after it, which the sync rightly leaves for the next one.
    world = small_world(seed=31, clock=past_clock)
    sim = make_simulator(world, faults=faults)
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    result = run_sync(sim, pipeline)
    assert_matches_truth(pipeline, world.truth())
    assert result.runs_fetched == len(world.truth())


def test_request_count_is_pages_of_what_the_server_really_serves(make_simulator, past_clock,
                                                                  tmp_path):
    world = small_world(seed=32, clock=past_clock)
    sim = make_simulator(world, faults=Faults(max_limit=40))
    result = run_sync(sim, duckdb_pipeline(tmp_path / "p.duckdb"), page_limit=100)
    assert result.requests == math.ceil(len(world.truth()) / 40)


def test_inflated_count_ends_without_looping(make_simulator, past_clock, tmp_path):
    world = small_world(seed=33, clock=past_clock)
    sim = make_simulator(world, faults=Faults(inflate_count=250))
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    result = run_sync(sim, pipeline)
    assert_matches_truth(pipeline, world.truth())
    pages = math.ceil(len(world.truth()) / 100)
    # Each pass ends on the first empty page; the window is tried at most three times. An
    # unpaced sync also guesses one page past the last (its look-ahead), never more.
    assert result.requests <= 3 * (pages + 2)


def test_count_changing_mid_sync(make_simulator, past_clock, tmp_path):
    world = small_world(seed=34, clock=past_clock, retention_days=5.5)
    sim = make_simulator(world, faults=Faults(order="asc"))

    def purge_while_paging(record):
        if len(sim.requests) == 4:  # old runs vanish at the head: later offsets shift
            past_clock.advance(timedelta(hours=3))

    sim.on_request = purge_while_paging
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    run_sync(sim, pipeline)
    sim.on_request = None
    truth = world.truth()
    stored_ids = set(_ids(pipeline))
    assert set(truth) - stored_ids <= _after_first_request(world, truth, sim), \
        "only runs that arrived after the window was pinned may be missing"


def _ids(pipeline):
    with pipeline.sql_client() as client:
        return [r[0] for r in client.execute_sql(
            f"select id from {client.make_qualified_table_name('zap_runs')}")]


def _after_first_request(world, truth, sim):
    pinned = sim.requests[0]["query"]
    from urllib.parse import parse_qs

    from pipelines.zap_runs.reading.rows import parse_time

    to_date = parse_time(parse_qs(pinned)["to_date"][0])
    return {i for i in truth if world.run(i).occurred_at >= to_date or world.run(i).start_time is None
            or world.run(i).start_time >= to_date}


@pytest.mark.parametrize("rate", [None, 60_000], ids=["unpaced", "paced"])
def test_look_ahead_changes_timing_never_results(make_simulator, past_clock, rate):
    """Unpaced paging guesses the page after next; a wrong guess (a short page) is dropped and
    the runs come out exactly as sequential paging gives them. A paced client never guesses."""
    world = small_world(seed=35, clock=past_clock)
    sim = make_simulator(world, faults=Faults(order="asc", short_page_rate=0.3))
    results = {}
    for lookahead in (False, None):
        client = ZapierClient(sim.base_url, sim.token, requests_per_minute=rate, backoff_base=0)
        pages = [[run.id for run in runs] for runs, _ in
                 fetch_window(client, {}, page_limit=50, lookahead=lookahead)]
        results[lookahead] = (pages, client.stats.requests)
        client.close()
    (sequential, plain), (default, spent) = results[False], results[None]
    # Short pages fall at random, so page boundaries differ; the runs, in order, may not.
    in_order = [run_id for page in sequential for run_id in page]
    assert [run_id for page in default for run_id in page] == in_order
    assert sorted(in_order) == sorted(world.truth())
    assert plain == len(sequential)  # sequential paging: one request per page served
    if rate is None:
        assert spent > len(default)  # some guesses fell on short pages: dropped, re-requested
    else:
        assert spent == len(default)


@pytest.mark.parametrize("lookahead", [False, None], ids=["sequential", "look-ahead"])
def test_a_capped_window_stops_after_its_first_page_when_it_needs_more(make_simulator,
                                                                      past_clock, lookahead):
    """A re-check window shared by k runs may cost k pages, no more: when the first page's
    count says it needs more, paging stops there (and spends no guess on the next page)."""
    from pipelines.zap_runs.api.paging import PageCap

    world = small_world(seed=36, clock=past_clock)
    sim = make_simulator(world)
    total = len(world.truth())
    needed = math.ceil(total / 50)
    for pages, cut in ((needed - 1, True), (needed, False)):
        client = ZapierClient(sim.base_url, sim.token, requests_per_minute=None, backoff_base=0)
        cap = PageCap(pages)
        runs = [run.id for page, _ in fetch_window(client, {}, page_limit=50,
                                                   lookahead=lookahead, cap=cap) for run in page]
        assert cap.cut is cut
        assert len(runs) == (50 if cut else total)
        assert client.stats.requests == (1 if cut else needed)
        client.close()
