"""The long-running mode (`--loop`): it leaves the DuckDB file free between loads, stops on
SIGTERM with what it read loaded, and loses nothing to a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from pipelines.simulator import Faults, Simulator, VirtualClock
from pipelines.zap_runs.accounts.state import read_states
from pipelines.zap_runs.cli.loop import Stop, run_loop
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.common import clock
from pipelines.zap_runs.common.sync_config import sync_config
from pipelines.zap_runs.warehouse.pipeline import logged_sync

from .conftest import small_world
from .warehouse import assert_matches_truth, duckdb_pipeline


@pytest.fixture
def looping(make_simulator, past_clock, tmp_path):
    """Start `python -m pipelines.zap_runs --loop ...` against one simulated account (slow
    answers, short pages); (start(args) -> process, the simulator, the world, the DuckDB file)."""
    world = small_world(seed=31, days=2, clock=past_clock, runs_per_day=200)
    sim = make_simulator(world, clock=past_clock, faults=Faults(slow_seconds=0.02, max_limit=25))
    db = tmp_path / "loop.duckdb"
    env = {**os.environ, "SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
           "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
           "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0", "SOURCES__ZAP_RUNS__BACKOFF_BASE": "0.01",
           "DESTINATION__DUCKDB__CREDENTIALS": str(db)}
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "pipelines.zap_runs", "--loop", *args],
                                   env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start, sim, world, db
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_line(process: subprocess.Popen, text: str) -> list[str]:
    """The stderr lines up to the first holding `text` (the process's own pace, no polling)."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"the loop ended ({process.wait()}) before {text!r}: {''.join(lines)}")


def wait_for_requests(sim, more_than: int, deadline: float = 60.0) -> None:
    ends = time.monotonic() + deadline
    while len(sim.zap_run_requests()) <= more_than:
        assert time.monotonic() < ends, "the loop made no request"
        time.sleep(0.01)


def test_between_loads_the_duckdb_file_is_free_and_sigterm_stops_at_once(looping):
    start, _sim, world, db = looping
    loop = start("--load-every", "3600")
    wait_for_line(loop, "round 1:")
    # Waiting for its next round: another process opens the file to write, as a dashboard may.
    with duckdb.connect(str(db)) as con:
        assert con.execute("select count(*) from zapier.zap_runs").fetchone()[0] == len(world.truth())
    loop.send_signal(signal.SIGTERM)
    out, err = loop.communicate(timeout=60)
    assert loop.returncode == 0, err
    assert "loop stopped after 1 rounds: 1 loads" in out
    assert_matches_truth(duckdb_pipeline(db), world.truth())


def test_sigterm_while_reading_loads_what_was_read_and_exits_0(looping):
    start, sim, world, db = looping
    loop = start("--load-every", "3600")
    wait_for_requests(sim, 2)  # reading its first round (a request takes 20 ms, pages of 25)
    loop.send_signal(signal.SIGTERM)
    out, err = loop.communicate(timeout=120)
    assert loop.returncode == 0, err
    assert "SIGTERM: stopping after the account being read" in err
    assert "loop stopped after 1 rounds: 1 loads" in out
    assert_matches_truth(duckdb_pipeline(db), world.truth())


def test_a_sigkill_in_a_round_loses_nothing(looping, past_clock, monkeypatch, tmp_path):
    start, sim, world, db = looping
    loop = start("--load-every", "0.01")
    wait_for_line(loop, "round 1:")
    past_clock.advance(timedelta(hours=2))  # new runs for round 2
    wait_for_requests(sim, len(sim.zap_run_requests()))
    loop.kill()
    loop.wait()
    for name, value in {"SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
                        "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
                        "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0",
                        "DESTINATION__DUCKDB__CREDENTIALS": str(db)}.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 0
    assert_matches_truth(duckdb_pipeline(db), world.truth())


@pytest.mark.parametrize("argv,message", [
    (["--loop", "--since", "2026-01-01"], "--since, --full-refresh and --all-accounts are for one sync"),
    (["--loop", "--load-every", "0"], "must be positive"),
    (["status", "--loop"], "are for sync"),
    (["--load-every", "30"], "--load-every is for --loop"),
])
def test_loop_arguments_a_user_gets_wrong_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_sigterm_during_a_load_finishes_it_then_stops_and_the_models_are_rebuilt(
        make_simulator, past_clock, tmp_path):
    """dlt intercepts SIGTERM while it loads: the loop's own handler stays, the load finishes,
    the loop stops; with one account the models are rebuilt once, at the end."""
    world = small_world(seed=32, days=1, clock=past_clock, runs_per_day=100)
    sim = make_simulator(world, clock=past_clock)
    pipeline = duckdb_pipeline(tmp_path / "term.duckdb")
    load = pipeline.load

    def load_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while dlt loads
        return load(*args, **kwargs)

    pipeline.load = load_then_signal
    built: list[int] = []
    stop = Stop()
    totals = run_loop(pipeline, sync_config(), load_every=3600, stop=stop,
                      build_models=lambda: built.append(1) or "built",
                      base_url=sim.base_url, access_token=sim.token, requests_per_minute=0)
    assert stop.signal == "SIGTERM" and totals.rounds == 1 and totals.loads == 1
    assert totals.failed_rounds == 0 and built == [1]
    pipeline.load = load
    assert_matches_truth(pipeline, world.truth())
    with pipeline.sql_client() as client:
        pending = client.execute_sql("select count(*) from _dlt_loads where status != 0")
    assert pending[0][0] == 0 and not pipeline.list_normalized_load_packages()


def test_a_second_loop_of_the_pipeline_exits_3(looping):
    start, _sim, _world, _db = looping
    first = start("--load-every", "3600")
    wait_for_line(first, "round 1:")
    second = start("--load-every", "3600")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 3, err
    assert "another --loop of this pipeline is running" in err.strip().splitlines()[-1]
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0


def test_in_a_loop_a_failing_account_backs_off_then_pauses(tmp_path):
    virtual = VirtualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))
    worlds = {"fine": small_world(seed=33, days=1, clock=virtual, runs_per_day=200),
              "broken": small_world(seed=34, days=1, clock=virtual, runs_per_day=200)}

    def fail(*_args, **_kwargs):
        raise RuntimeError("the account's shard of Zapier is down")

    sim = Simulator(accounts=list(worlds.items()), clock=virtual, rate_limit=None).start()
    accounts = [{"name": n, "access_token": sim.accounts[n].token} for n in worlds]
    pipeline = duckdb_pipeline(tmp_path / "f.duckdb")
    tried: list[datetime] = []
    stop = Stop()
    end = virtual.now() + timedelta(hours=1)

    def after_round(result, _seconds: float) -> None:
        for outcome in result.accounts if result is not None else []:
            if outcome.account == "broken" and outcome.result == "failed":
                tried.append(outcome.started_at)
        if virtual.now() >= end:
            stop.set()

    try:
        with clock.use(virtual):
            logged_sync(pipeline, sync_config(), base_url=sim.base_url, accounts=accounts,
                        requests_per_minute=0, all_accounts=True, backoff_base=0.01)
            worlds["broken"].page = fail
            totals = run_loop(pipeline, sync_config(), load_every=120, stop=stop,
                              after_round=after_round, base_url=sim.base_url, accounts=accounts,
                              requests_per_minute=0, backoff_base=0.01, max_retries=1)
        assert totals.rounds >= 28, totals
        # Tried, then 5 and 15 minutes later; paused after the third failure.
        assert len(tried) == 3, tried
        assert tried[1] - tried[0] >= timedelta(minutes=5)
        assert tried[2] - tried[1] >= timedelta(minutes=15)
        states = read_states(pipeline, ["broken"])
        assert "failed in 3 passes in a row" in states["broken"]["refused"]["error"]
    finally:
        sim.stop()


def test_rounds_share_one_pacer_so_a_round_boundary_costs_no_429(tmp_path):
    """A round's first request is spaced from the last round's: a loop paced at the server's
    own limit never hears a 429 (a fresh pacer a round sent one request too many a window)."""
    virtual = VirtualClock(datetime(2026, 11, 2, 12, tzinfo=UTC))
    worlds = {f"u{i}": small_world(seed=50 + i, days=1, clock=virtual, runs_per_day=400)
              for i in range(8)}
    sim = Simulator(accounts=list(worlds.items()), clock=virtual, rate_limit=None).start()
    accounts = [{"name": n, "access_token": sim.accounts[n].token} for n in worlds]
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    try:
        with clock.use(virtual):
            logged_sync(pipeline, sync_config(), base_url=sim.base_url, accounts=accounts,
                        requests_per_minute=0, all_accounts=True, backoff_base=0.01)
            sim.limiter.limit = 10  # the server's: 10 a minute, as the loop paces
            before = len(sim.zap_run_requests())
            totals = run_loop(pipeline, sync_config(), load_every=60, max_rounds=6,
                              base_url=sim.base_url, accounts=accounts, requests_per_minute=10,
                              backoff_base=0.01)
        sent = len(sim.zap_run_requests()) - before
        assert totals.rounds == 6 and sent >= 30, (totals, sent)  # the windows were full
        assert sim.limiter.refused == 0, f"{sim.limiter.refused} requests refused (429)"
    finally:
        sim.stop()
