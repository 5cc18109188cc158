"""A dashboard holding the DuckDB file: the sync waits, then fails naming the cause; no damage."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from pipelines.zap_runs.warehouse.locks import DatabaseLocked

from .warehouse import duckdb_pipeline, run_sync

HOLD = ("import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "print('holding', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n")


def hold(path, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"  # the lock is taken before we go on
    return proc


def count(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select count(*) from zapier.zap_runs").fetchone()[0]


def test_locked_file_fails_with_the_cause_and_stays_intact(make_simulator, tmp_path, monkeypatch):
    sim = make_simulator()
    db = tmp_path / "dash.duckdb"
    run_sync(sim, duckdb_pipeline(db))
    before = count(db)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__LOCK_WAIT_SECONDS", "0.5")
    holder = hold(db, 30)
    try:
        with pytest.raises(DatabaseLocked, match="locked by another process") as raised:
            run_sync(sim, duckdb_pipeline(db))
        assert "lock_wait_seconds" in str(raised.value) and str(db) in str(raised.value)
    finally:
        holder.kill()
        holder.wait()
    assert count(db) == before
    assert run_sync(sim, duckdb_pipeline(db)).runs_fetched > 0


def test_sync_waits_for_a_short_lock(make_simulator, tmp_path, monkeypatch):
    sim = make_simulator()
    db = tmp_path / "dash.duckdb"
    run_sync(sim, duckdb_pipeline(db))
    monkeypatch.setenv("SOURCES__ZAP_RUNS__LOCK_WAIT_SECONDS", "30")
    holder = hold(db, 1.0)  # a dashboard that lets go after a second
    try:
        result = run_sync(sim, duckdb_pipeline(db))
    finally:
        holder.wait(timeout=30)
    assert result.runs_fetched > 0
