"""Unattended running: one sync at a time, a sync log in the warehouse, status, gap warnings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta

import duckdb
import pytest

from pipelines.simulator import Faults
from pipelines.zap_runs.cli.main import main

from .conftest import small_world
from .warehouse import duckdb_pipeline, run_sync


@pytest.fixture
def env(make_simulator, monkeypatch, tmp_path):
    def configure(sim):
        values = {"SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
                  "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
                  "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0",
                  "SOURCES__ZAP_RUNS__BACKOFF_BASE": "0.01",
                  "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "u.duckdb")}
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return {**os.environ, **values}
    return configure


def log_rows(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select result, error, runs_fetched, requests from "
                           "zapier.zap_runs_sync_log order by started_at").fetchall()


def test_overlapping_syncs_wait_then_give_up_with_exit_3(make_simulator, env, tmp_path, capsys):
    sim = make_simulator(faults=Faults(slow_seconds=0.15, max_limit=20))
    full_env = env(sim)
    first = subprocess.Popen([sys.executable, "-m", "pipelines.zap_runs"], env=full_env,
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not sim.zap_run_requests():  # the first sync holds the lock once it fetches
            assert time.monotonic() < deadline and first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        os.environ["SOURCES__ZAP_RUNS__OVERLAP_WAIT_SECONDS"] = "0.5"
        assert main([]) == 3
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert "another sync of this pipeline is still running" in line and "PID" in line
        os.environ["SOURCES__ZAP_RUNS__OVERLAP_WAIT_SECONDS"] = "120"
        assert main([]) == 0, "the second sync waits for the first and then runs"
    finally:
        out, err = first.communicate(timeout=120)
        del os.environ["SOURCES__ZAP_RUNS__OVERLAP_WAIT_SECONDS"]
    assert first.returncode == 0, err[-2000:]
    assert [r[0] for r in log_rows(tmp_path / "u.duckdb")] == ["success", "success"]


def test_sync_log_and_status(make_simulator, env, tmp_path, capsys):
    sim = make_simulator()
    env(sim)
    assert main(["status"]) == 1  # nothing recorded yet
    assert "run a sync first" in capsys.readouterr().err
    assert main([]) == 0
    summary = capsys.readouterr().out
    assert "  rate limit " in summary and "  needed     about " in summary
    assert "spent on" not in summary and "ratio" not in summary, "the split is for --verbose"
    sim.faults.error_rate = 1.0
    os.environ["SOURCES__ZAP_RUNS__MAX_RETRIES"] = "1"
    try:
        assert main([]) == 1
    finally:
        del os.environ["SOURCES__ZAP_RUNS__MAX_RETRIES"]
    rows = log_rows(tmp_path / "u.duckdb")
    assert [r[0] for r in rows] == ["success", "failed"]
    assert rows[0][2] > 0 and rows[0][3] > 0
    assert "gave up after 1 retries" in rows[1][1] and sim.token not in rows[1][1]
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "last sync" in out and "failed after" in out and "OK:" in out
    assert "budget B" not in out and "None" not in out
    assert main(["status", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "  spent on       " not in out, "the last pass failed: it spent nothing it kept"
    sim.faults.error_rate = 0.0
    assert main([]) == 0
    capsys.readouterr()
    assert main(["status", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  runs           [\d,]+ fetched: [\d,]+ new, [\d,]+ updated; [\d,]+ still "
                     r"open$", out, re.M)
    assert re.search(r"^  spent on       \d+ new runs, \d+ open listing", out, re.M)
    assert re.search(r"^  budget         B \d+ \(what changed\), ratio ", out, re.M)
    assert main(["status", "--max-age", "0"]) == 1
    assert "STALE" in capsys.readouterr().out


def test_an_old_sync_log_gets_the_request_split_columns(make_simulator, env, tmp_path):
    """A log made before requests were split keeps its rows and gains the new columns; each
    sync's split adds up to its requests."""
    from pipelines.zap_runs.warehouse.synclog import DDL

    with duckdb.connect(str(tmp_path / "u.duckdb")) as con:
        con.execute("create schema zapier")
        con.execute(DDL.format(table="zapier.zap_runs_sync_log"))
        con.execute("insert into zapier.zap_runs_sync_log (sync_id, result) values ('old', 'success')")
    env(make_simulator())
    assert main([]) == 0 and main([]) == 0
    with duckdb.connect(str(tmp_path / "u.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select sync_id, requests, retries, requests_new + requests_lookback + requests_open + "
            "requests_errors + requests_rechecks + requests_unlisted + requests_late, budget, "
            "budget_ratio "
            "from zapier.zap_runs_sync_log order by started_at nulls first").fetchall()
    assert rows[0][0] == "old" and rows[0][4] is None
    for _, requests, retries, split, budget, _ in rows[1:]:
        assert split == requests - retries and budget >= 0


def test_gap_warnings(make_simulator, past_clock, tmp_path, monkeypatch):
    # The sync's clock follows the world's, so days can pass between syncs in a test.
    monkeypatch.setattr("pipelines.zap_runs.reading.incremental.utcnow",
                        lambda: past_clock.now() + timedelta(minutes=1))
    world = small_world(seed=81, days=3, clock=past_clock)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "g.duckdb")
    run_sync(sim, pipeline, gap_warning_hours=24, retention_days=29)
    past_clock.advance(timedelta(minutes=30))
    result = run_sync(sim, pipeline, gap_warning_hours=1, retention_days=29)
    assert not result.warnings
    past_clock.advance(timedelta(hours=30))
    late = run_sync(sim, pipeline, gap_warning_hours=24, retention_days=29)
    assert any("more than gap_warning_hours" in w for w in late.warnings)
    past_clock.advance(timedelta(hours=20))
    lost = run_sync(sim, pipeline, gap_warning_hours=24, retention_days=0.5)
    assert any("may be lost for good" in w for w in lost.warnings)
