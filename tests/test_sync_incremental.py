"""Incremental and correct: pinned windows, the cursor, lookback, open-run re-checks, --since."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from dlt.common.schema.utils import get_write_disposition

from pipelines.simulator import Faults
from pipelines.zap_runs.common.settings import FINAL_STATUSES
from pipelines.zap_runs.reading.rows import parse_time

from .conftest import small_world
from .warehouse import assert_matches_truth, duckdb_pipeline, run_sync, warehouse_runs


def queries(sim, since_request=0):
    return [{k: v[-1] for k, v in parse_qs(r["query"]).items()}
            for r in sim.zap_run_requests()[since_request:]]


def test_to_date_is_pinned_and_from_date_follows_the_cursor(make_simulator, past_clock, tmp_path):
    world = small_world(clock=past_clock)
    sim = make_simulator(world, faults=Faults(max_limit=50))
    pipeline = duckdb_pipeline(tmp_path / "i.duckdb")
    run_sync(sim, pipeline)
    first = queries(sim)
    assert len({q["to_date"] for q in first}) == 1, "to_date never moves while paging"
    assert all("from_date" not in q for q in first), "first sync: the API's default 30 days"
    cursor = max(parse_time(r["start_time"]) for r in world.truth().values() if r["start_time"])
    past_clock.advance(timedelta(hours=2))
    mark = len(sim.zap_run_requests())
    run_sync(sim, pipeline, lookback_hours=5)
    main = [q for q in queries(sim, mark)
            if "zap_id" not in q and "statuses" not in q and q["limit"] != "1"]
    assert {parse_time(q["from_date"]) for q in main} == {cursor - timedelta(hours=5)}
    assert len({q["to_date"] for q in main}) == 1


def test_cursor_compares_datetimes_not_text():
    whole, fraction = parse_time("2026-01-01T10:00:00Z"), parse_time("2026-01-01T10:00:00.500Z")
    assert "2026-01-01T10:00:00Z" > "2026-01-01T10:00:00.500Z"  # the text trap
    assert fraction > whole and fraction.tzinfo is not None
    assert parse_time("2026-01-01T11:00:00+01:00") == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_since_backfills_beyond_30_days_on_first_sync(make_simulator, past_clock, tmp_path):
    world = small_world(days=45, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "s.duckdb")
    since = (past_clock.now() - timedelta(days=44)).strftime("%Y-%m-%d")
    run_sync(sim, pipeline, since=since)
    from_dates = {q.get("from_date") for q in queries(sim)}
    assert from_dates == {f"{since}T00:00:00.000000Z"}
    stored = warehouse_runs(pipeline)
    assert len(stored) == len(world.truth(parse_time(since)))
    assert len(stored) > len(world.truth(past_clock.now() - timedelta(days=30)))


def test_lookback_catches_manual_replays(make_simulator, past_clock, tmp_path):
    world = small_world(seed=41, days=2, clock=past_clock, runs_per_day=2000, replay_max_hours=10)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "r.duckdb")
    run_sync(sim, pipeline)
    errors: set[str] = set()
    for _ in range(6):  # a day of syncs every four hours, noting every run loaded as failed
        errors |= {i for i, r in warehouse_runs(pipeline).items() if r["status"] == "error"}
        past_clock.advance(timedelta(hours=4))
        run_sync(sim, pipeline)
    truth = world.truth()
    replayed = {i for i in errors if truth[i]["status"] == "success"}
    assert replayed, "the world should have replayed some failed runs"
    stored = warehouse_runs(pipeline)
    assert all(stored[i]["status"] == "success" for i in replayed)


def test_open_runs_are_rechecked_until_they_settle_at_a_cost_bound_by_open_runs(
        make_simulator, past_clock, tmp_path):
    world = small_world(seed=42, days=12, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "o.duckdb")
    run_sync(sim, pipeline, lookback_hours=1)
    opened = {i for i, r in warehouse_runs(pipeline).items()
              if r["status"] not in FINAL_STATUSES or r["start_time"] is None}
    assert opened
    for _ in range(4):
        past_clock.advance(timedelta(hours=18))
        mark = len(sim.zap_run_requests())
        result = run_sync(sim, pipeline, lookback_hours=1)
        rechecks = [q for q in queries(sim, mark) if "zap_id" in q]
        main = [q for q in queries(sim, mark)
                if "zap_id" not in q and "statuses" not in q and q["limit"] != "1"]
        assert len(rechecks) <= result.rechecks * 2 and result.rechecks <= len(opened)
        assert len(main) <= math.ceil(result.runs_fetched / 100) + 1
    truth = world.truth()
    stored = warehouse_runs(pipeline)
    settled = {i for i in opened if i in truth and truth[i]["status"] in FINAL_STATUSES
               and truth[i]["start_time"] is not None}
    assert settled, "some open runs settled in the world"
    for run_id in settled:
        assert stored[run_id]["status"] == truth[run_id]["status"], run_id
        assert stored[run_id]["start_time"] is not None


def test_full_refresh_rereads_the_window_and_keeps_history(make_simulator, past_clock, tmp_path):
    world = small_world(seed=43, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "f.duckdb")
    run_sync(sim, pipeline)
    past_clock.advance(timedelta(hours=1))
    result = run_sync(sim, pipeline, full_refresh=True)
    assert result.runs_fetched == len(world.truth())
    assert_matches_truth(pipeline, world.truth())


def test_every_sync_merges_both_tables_in_one_transaction(make_simulator, past_clock, tmp_path):
    """Runs and their nested steps are merged, the first sync too: dlt merges a root table and
    its nested tables from staging in one transaction, so no reader sees one without the other."""
    world = small_world(seed=44, days=3, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "a.duckdb")
    for _ in range(2):
        run_sync(sim, pipeline, lookback_hours=24)
        tables = pipeline.default_schema.tables
        assert {get_write_disposition(tables, name) for name in ("zap_runs", "zap_runs__steps")} \
            == {"merge"} and tables["zap_runs__steps"]["parent"] == "zap_runs"
        assert_matches_truth(pipeline, world.truth())
        past_clock.advance(timedelta(hours=3))


def test_a_run_in_an_unlisted_status_is_rechecked_until_it_settles(make_simulator, past_clock,
                                                                   tmp_path):
    """A status the contract does not list is not settled: the run is re-checked (the lookback
    alone would never see it again) until it settles, and its status, steps and its day's error
    rate then end right."""
    from pipelines.simulator.lifecycle import UNLISTED_OPEN_STATUSES
    from pipelines.zap_runs.warehouse.models import build_models

    from .model_truth import daily

    # No manual replays: a replay hours after an error is the lookback's to catch, not this test's.
    world = small_world(seed=47, days=2, clock=past_clock, unlisted_open_rate=0.3,
                        unlisted_settle_hours=8.0, replay_max_hours=0)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "u.duckdb")
    run_sync(sim, pipeline, lookback_hours=0.5)
    first = warehouse_runs(pipeline)
    unlisted = {i for i, r in first.items() if r["status"] in UNLISTED_OPEN_STATUSES
                and r["start_time"] is not None}
    assert unlisted, "the world should show runs in an unlisted status"
    for _ in range(3):
        past_clock.advance(timedelta(hours=4))
        result = run_sync(sim, pipeline, lookback_hours=0.5)
    truth = world.truth()
    settled = {i for i in unlisted if truth[i]["status"] in FINAL_STATUSES}
    assert settled and result.rechecks > 0
    assert_matches_truth(pipeline, truth)
    days = {(truth[i]["zap_id"], parse_time(truth[i]["start_time"]).date()) for i in settled}
    expected = daily({"default": truth})  # the account a sync of one account writes
    build_models(pipeline)
    with pipeline.sql_client() as client:
        got = {(zap, day): rate for zap, day, rate in client.execute_sql(
            f"select zap_id, day, error_rate from "
            f"{client.make_qualified_table_name('zap_error_rates_daily')}")}
    for key in days:
        want = expected[("default", *key)]["error_rate"]
        assert got[key] == (None if want is None else pytest.approx(want)), key


def test_an_open_run_listed_far_from_its_start_is_anchored_where_the_listing_puts_it():
    """The API lists runs by when they were triggered: a held run that started days later sits
    among its trigger-time neighbours, and a re-check at its start time would miss it (then read
    the zap's whole window). Its anchor is its neighbours' span; an ordinary one keeps its start."""
    from pipelines.zap_runs.reading.rows import RunKey
    from pipelines.zap_runs.reading.watch import Anchors

    t0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    window = (t0 - timedelta(days=5), t0 + timedelta(days=5))
    anchors, open_runs = Anchors(window, t0 - timedelta(days=3)), {}
    for i in range(7):
        start = t0 + timedelta(minutes=i)
        if i == 3:  # triggered among the others, started two days later, still open
            anchors.add(RunKey("late", 1, "queued", t0 + timedelta(days=2)), open_runs)
        anchors.add(RunKey(f"r{i}", 1, "delayed" if i == 5 else "success", start), open_runs)
    anchors.resolve(open_runs)
    late, ordinary = open_runs["late"], open_runs["r5"]
    assert late.anchor_from <= t0 + timedelta(minutes=2) < t0 + timedelta(minutes=3) <= late.anchor_to
    assert late.anchor_to - late.anchor_from < timedelta(hours=1)
    assert (ordinary.anchor_from, ordinary.anchor_to) == (t0 + timedelta(minutes=5),
                                                          t0 + timedelta(minutes=5, milliseconds=1))


def test_the_cursor_never_passes_the_window_a_late_starting_run_was_read_in(
        make_simulator, past_clock, tmp_path, monkeypatch):
    """A run triggered inside the window may start after its end (held, then started while the
    sync was paging, or the server's clock ahead of ours): the cursor stops at the window's end,
    or the runs triggered between that end and the late start would never be read."""
    from pipelines.simulator.lifecycle import Change, Run, iso

    world = small_world(seed=43, days=1, clock=past_clock, runs_per_day=0)
    now = past_clock.now()
    # The sync's clock an hour behind the server's.
    monkeypatch.setattr("pipelines.zap_runs.reading.incremental.utcnow", lambda: now - timedelta(hours=1))
    late = now - timedelta(hours=1, minutes=10)
    world.add(Run(id="00000000-0000-4000-8000-0000000000aa", zap_id=1, zap_title="held",
                  occurred_at=late, status="success", start_time=now - timedelta(minutes=5),
                  end_time=now - timedelta(minutes=4),
                  steps=[{"status": "success", "start_time": iso(now - timedelta(minutes=5))}],
                  data_in={}, data_out={}), [])
    between = now - timedelta(minutes=30)  # after the first window's end, before the late start
    world.add(Run(id="00000000-0000-4000-8000-0000000000bb", zap_id=1, zap_title="between",
                  occurred_at=between, status="success", start_time=between, end_time=between,
                  steps=[], data_in={}, data_out={}), [Change(between, "success", between,
                                                              between, [])])
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "c.duckdb")
    run_sync(sim, pipeline)
    assert set(warehouse_runs(pipeline)) == {"00000000-0000-4000-8000-0000000000aa"}
    monkeypatch.setattr("pipelines.zap_runs.reading.incremental.utcnow", lambda: now + timedelta(minutes=1))
    run_sync(sim, pipeline)
    assert "00000000-0000-4000-8000-0000000000bb" in warehouse_runs(pipeline)


def test_a_run_a_page_lists_twice_becomes_one_row():
    """DuckDB's merge skips dlt's dedup, so the reads hand each run over once, also when one
    page lists it twice (a page that repeats a run of an earlier page is covered by run_ids)."""
    from types import SimpleNamespace

    from pipelines.zap_runs.accounts.outcomes import SyncProgress
    from pipelines.zap_runs.api.runs import run_from_dict
    from pipelines.zap_runs.reading.incremental import Reads
    from pipelines.zap_runs.reading.watch import Anchors

    now = datetime.now(UTC).replace(microsecond=0)
    run = {"id": "r1", "zap_id": 7, "zap_title": "Leads", "status": "success",
           "start_time": now.isoformat(), "end_time": now.isoformat(),
           "steps": [{"status": "success", "start_time": None}], "data_in": None, "data_out": None}
    other = {**run, "id": "r2"}
    reads = Reads(SimpleNamespace(stats=None), {}, SyncProgress(), 100, "default", None)
    reads.watched = {}
    anchors = Anchors((now - timedelta(hours=1), now), now - timedelta(days=3))
    page = [run_from_dict(r) for r in (run, other, run)]
    rows, keys = reads.take(page, "GET /v2/zap-runs", anchors)
    assert [row["id"] for row in rows] == ["r1", "r2"] and [k.id for k in keys] == ["r1", "r2"]
    rows, _ = reads.take([run_from_dict(other)], "GET /v2/zap-runs?offset=100", anchors)
    assert rows == []
