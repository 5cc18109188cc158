"""Freshness per account: when the sync last read it, when it is next due and why, in the
account_freshness mart, the sync log and `status` (DuckDB and PostgreSQL), after real scheduled
passes against the simulator; and the mart on warehouses from before schedules."""

from __future__ import annotations

import json
import math
import re

import pytest

from pipelines.zap_runs.accounts.state import TABLE, read_states
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.output.health import read_status
from pipelines.zap_runs.output.status import Status, format_status
from pipelines.zap_runs.warehouse.models import build_models

from .conftest import small_world
from .raw_tables import write_raw_tables
from .scheduled import MAX_STALENESS_HOURS, SHORTEST, scheduled_passes
from .warehouse import drop_datasets, duckdb_pipeline, pipeline_for, run_sync, set_env

DESTINATIONS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
MART_COLUMNS = ["account_id", "pipeline_name", "last_read_at", "next_due_at", "due_reason",
                "hours_since_read", "max_staleness_hours", "is_overdue", "is_beyond_max_staleness",
                "is_on_schedule", "runs_per_hour", "failures_per_hour", "last_pass_started_at", "as_of"]
SCHEDULE_COLUMNS = ("last_read_at", "next_due_at", "due_reason", "worth", "requests_per_read",
                    "max_staleness_hours")


def rows_of(pipeline, sql: str, *args: object) -> list[dict]:
    with pipeline.sql_client() as client:
        sql = sql.format(**{name: client.make_qualified_table_name(name) for name in
                            ("account_freshness", "account_health", "zap_runs_sync_log",
                                             TABLE)})
        with client.execute_query(sql, *args) as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def freshness(pipeline) -> dict[str, dict]:
    return {r["account_id"]: r for r in rows_of(pipeline, "select * from {account_freshness}")}


def close(a, b) -> bool:
    return a is not None and b is not None and math.isclose(float(a), float(b), abs_tol=1e-6)


def masked(text: str) -> str:
    """Times as <time>; how long ago and until are kept: the clock is simulated."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_the_mart_and_the_sync_log_tell_when_each_account_was_read_and_is_next_due(
        destination, tmp_path, request):
    pipeline = pipeline_for(destination, tmp_path, request, "fresh")
    try:
        passes = scheduled_passes(pipeline, tmp_path)
        build_models(pipeline)
        mart = freshness(pipeline)
        log = rows_of(pipeline, "select * from {zap_runs_sync_log} order by started_at")
        assert len(log) == 5, "a; b, c; a; one of b and c"
        for row in log:  # every read: due SHORTEST after it (no rate: as often as allowed)
            assert row["last_read_at"] == row["window_to"] == row["started_at"], row
            assert row["next_due_at"] == row["last_read_at"] + SHORTEST and row["due_reason"]
        newest = {row["account_id"]: row for row in log}
        assert set(mart) == {"a", "b", "c"}
        for name, row in mart.items():
            read = newest[name]
            assert (row["last_read_at"], row["next_due_at"], row["due_reason"]) == (
                read["last_read_at"], read["next_due_at"], read["due_reason"]), name
            assert close(row["hours_since_read"],
                         (row["as_of"] - row["last_read_at"]).total_seconds() / 3600)
            assert close(row["max_staleness_hours"], MAX_STALENESS_HOURS)
            assert row["pipeline_name"] == pipeline.pipeline_name
            assert row["last_pass_started_at"] == newest[passes.read]["started_at"]
        # The mart's clock is the database's (real time), 4 h after the first pass like the
        # simulated one: the overdue account has gone unread 2.5 h, `a` 1.8 h.
        assert {n for n, r in mart.items() if r["is_overdue"]} == {passes.overdue}
        assert {n for n, r in mart.items() if r["is_beyond_max_staleness"]} == {passes.overdue}
        assert {n for n, r in mart.items() if r["is_on_schedule"]} == {"a", passes.read}
        states = read_states(pipeline, mart)
        for name, row in mart.items():
            schedule = states[name]["schedule"]
            assert close(row["runs_per_hour"], schedule["runs_h"]), name
            assert close(row["failures_per_hour"], schedule["fails_h"]), name
        assert list(next(iter(mart.values()))) == MART_COLUMNS

        status = read_status(pipeline, 1, now=passes.now, configured={"a", "b", "c"})
        assert status.on_schedule == {"a", passes.read}
        assert [a["account_id"] for a in status.stale_accounts] == [passes.overdue]
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)


def test_status_tells_when_each_account_was_read_and_a_not_due_one_is_not_stale(
        tmp_path, monkeypatch, capsys):
    db = tmp_path / "status.duckdb"
    pipeline = duckdb_pipeline(db)
    passes = scheduled_passes(pipeline, tmp_path)
    overdue, read = passes.overdue, passes.read
    why = {n: r["due_reason"] for n, r in freshness_rows(pipeline).items()}
    everyone = {"a", "b", "c"}

    status = read_status(pipeline, 1, now=passes.now, configured=everyone)
    lines = masked(format_status(status)).splitlines()
    assert lines[-5:] == [
        "  health         3 accounts: 2 ok, 0 failing, 1 stale",
        f"  freshness      3 accounts: 1 overdue, 1 beyond max_staleness; least fresh {overdue}, "
        "read <time> (2.5 h ago)",
        f"  STALE          {overdue}: last success <time> (2.5 h ago)",
        "OK: the last successful sync is within 1 h",
        "SOME ACCOUNTS FAILING OR STALE (exit 4)"]
    assert status.exit_code == 4
    # `a` was last read 1.8 h ago, more than --max-age, but is not due yet: neither stale nor,
    # without a configuration to compare with, taken for an account removed from it.
    unscheduled = Status(status.where, status.now, 1, status.last, status.success, status.newest,
                         status.accounts, configured=frozenset(everyone))
    assert {a["account_id"] for a in unscheduled.stale_accounts} == {"a", overdue}, \
        "judged by age alone, as before schedules"
    guessed = read_status(pipeline, 1, now=passes.now)
    assert [a["account_id"] for a in guessed.gone] == [overdue]

    verbose = masked(format_status(status, verbose=True)).splitlines()
    start = verbose.index(lines[-4]) + 1
    assert verbose[start:start + 3] == [
        f"  account        {overdue}: read <time> (2.5 h ago), BEYOND max_staleness (2.4 h); next "
        f"due <time> (0.5 h ago), OVERDUE: the last pass did not read it: {why[overdue]}",
        f"  account        a: read <time> (1.8 h ago); next due <time> (in 0.2 h): {why['a']}",
        f"  account        {read}: read <time> (0.3 h ago); next due <time> (in 1.7 h): "
        f"{why[read]}"]

    one = read_status(pipeline, 1, "a", now=passes.now)
    text = masked(format_status(one)).splitlines()
    assert text[-3:] == [
        "  last read      <time> (1.8 h ago)",
        f"  next due       <time> (in 0.2 h): {why['a']}",
        "OK: account 'a' is on schedule: no pass has missed it since it came due, and it was read "
        "within its max_staleness"]
    assert one.exit_code == 0

    # The command, on the real clock (the simulated one is where it was a moment ago).
    set_env(monkeypatch, db)
    file = str(passes.accounts_file)
    assert main(["status", "--max-age", "1", "--accounts-file", file, "--json"]) == 4
    out = json.loads(capsys.readouterr().out)
    fresh = out["freshness"]
    assert (fresh["overdue"], fresh["beyond_max_staleness"]) == (1, 1)
    assert [a["account"] for a in fresh["accounts"]] == [overdue, "a", read]
    assert fresh["accounts"][0]["is_overdue"] and fresh["accounts"][0]["due_reason"] == why[overdue]
    assert [(a["account"], a["reason"]) for a in out["attention"]] == [(overdue, "stale")]
    assert main(["status", "--max-age", "1", "--account", "a"]) == 0
    assert "  next due       " in capsys.readouterr().out
    assert main(["status", "--max-age", "1", "--account", overdue]) == 1
    out = capsys.readouterr().out
    assert "OVERDUE: the last pass did not read it" in out and "BEYOND max_staleness" in out


def test_account_health_does_not_call_an_account_stale_that_is_not_due(tmp_path):
    pipeline = duckdb_pipeline(tmp_path / "health.duckdb")
    # Four times the hours: `a` was read 7.2 h ago (more than account_health's 6 h) and is due
    # in 0.8 h; the overdue account was read 10 h ago.
    passes = scheduled_passes(pipeline, tmp_path, scale=4)
    mart = freshness_rows(pipeline)
    assert {n for n, r in mart.items() if r["is_on_schedule"]} == {"a", passes.read}
    health = {r["account_id"]: r for r in rows_of(pipeline, "select * from {account_health}")}
    assert {n for n, r in health.items() if r["is_stale"]} == {passes.overdue}
    assert health[passes.overdue]["attention_reason"].startswith("no successful sync in the last")
    assert read_status(pipeline, 6, "a", now=passes.now).exit_code == 0


def freshness_rows(pipeline) -> dict[str, dict]:
    build_models(pipeline)
    return freshness(pipeline)


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_the_mart_builds_on_warehouses_from_before_schedules_and_the_next_sync_fills_it(
        destination, make_simulator, past_clock, tmp_path, request):
    sim = make_simulator(small_world(seed=64, days=1, clock=past_clock, runs_per_day=40))
    pipeline = pipeline_for(destination, tmp_path, request, "older")
    try:
        run_sync(sim, pipeline)
        # A state table an older version made: without the schedule's columns.
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE)
            for column in SCHEDULE_COLUMNS:
                client.execute_sql(f"alter table {table} drop column {column}")
        [row] = freshness_rows(pipeline).values()
        assert (row["account_id"], row["last_read_at"], row["next_due_at"], row["due_reason"],
                row["is_overdue"], row["is_beyond_max_staleness"]) == (
            "default", None, None, None, False, False)
        assert row["runs_per_hour"] is not None, "from the state's schedule"
        run_sync(sim, pipeline)  # dlt loads into the columns the models added
        [row] = freshness_rows(pipeline).values()
        # One account is read at every load: it is due again at once.
        assert row["last_read_at"] is not None and row["next_due_at"] == row["last_read_at"]
        assert row["due_reason"].startswith("every load")

        # A warehouse from before the state table: the models read an empty stand-in, which
        # dlt's next load fills.
        with pipeline.sql_client() as client:
            client.execute_sql(f"drop table {client.make_qualified_table_name(TABLE)}")
        assert freshness_rows(pipeline) == {}
        run_sync(sim, pipeline)
        assert list(freshness_rows(pipeline)) == ["default"]
    finally:
        if destination == "postgres":
            drop_datasets(pipeline)


def test_the_mart_builds_on_tables_made_by_hand_without_dlts_loads(tmp_path):
    pipeline = duckdb_pipeline(tmp_path / "hand.duckdb")
    write_raw_tables(pipeline, {"solo": {}})  # no _dlt_loads, no state table, no sync log
    build_models(pipeline)
    with pipeline.sql_client() as client:
        mart = client.make_qualified_table_name("account_freshness")
        with client.execute_query(f"select * from {mart}") as cursor:
            assert [d[0] for d in cursor.description] == MART_COLUMNS
            assert cursor.fetchall() == []
