"""The command line: configuration the dlt way, flags, summary, exit codes, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import duckdb
import pytest

from pipelines.simulator import Faults
from pipelines.zap_runs.cli.main import main

from .conftest import small_world


def count(path, table="zapier.zap_runs") -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select count(*) from {table}").fetchone()[0]


def test_env_vars_configure_the_source_and_default_duckdb_file(sim_env, tmp_path, capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "fetched" in out and "requests" in out and "elapsed" in out
    assert count(tmp_path / "zap_runs.duckdb") == len(sim_env.world.truth(
        sim_env.world.clock.now() - timedelta(days=30)))
    assert sim_env.zap_run_requests(), "the sync talked to the simulator named in the env var"


def test_destination_credentials_and_dataset(sim_env, tmp_path, monkeypatch, capsys):
    target = tmp_path / "elsewhere.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(target))
    assert main(["--dataset", "ops"]) == 0
    assert count(target, "ops.zap_runs") > 0
    assert not (tmp_path / "zap_runs.duckdb").exists()


def test_summary_counts_new_then_updated(sim_env, capsys):
    assert main([]) == 0
    first = capsys.readouterr().out
    assert main([]) == 0
    second = capsys.readouterr().out
    assert " 0 updated" in first
    assert " 0 new" in second and "updated" in second


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--destination", "--dataset", "--since", "--full-refresh", "--lookback",
                 "--log-level", "--demo", "Exit codes"):
        assert flag in text


@pytest.mark.parametrize("argv,env,needle", [
    ([], {}, "access_token"),
    (["--since", "last tuesday"], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t"}, "--since"),
    ([], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t", "SOURCES__ZAP_RUNS__BASE_URL": "api.zapier.com"},
     "base_url"),
    (["--destination", "nonsense"], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t"}, "unknown destination"),
    (["--lookback", "-3"], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t"}, "--lookback"),
    ([], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t", "SOURCES__ZAP_RUNS__REPLAY_HORIZON_HOURS": "-1"},
     "SOURCES__ZAP_RUNS__REPLAY_HORIZON_HOURS"),
    ([], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t", "SOURCES__ZAP_RUNS__REPLAY_HORIZON_HOURS": "inf"},
     "replay_horizon_hours"),
    ([], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t", "SOURCES__ZAP_RUNS__RETENTION_DAYS": "0"},
     "retention_days"),
    (["--destination", "postgres"], {"SOURCES__ZAP_RUNS__ACCESS_TOKEN": "t"},
     "DESTINATION__POSTGRES__CREDENTIALS"),
])
def test_bad_configuration_exits_2_with_one_line(argv, env, needle, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and needle in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_bad_argument_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "LOUD"])
    assert exit_.value.code == 2


def test_rejected_token_and_missing_scope(make_simulator, monkeypatch, capsys):
    sim = make_simulator()
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", sim.base_url)
    secret = "sk-live-very-secret-value"
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", secret)
    assert main(["--log-level", "DEBUG"]) == 2
    captured = capsys.readouterr()
    assert "401" in captured.err and "SOURCES__ZAP_RUNS__ACCESS_TOKEN" in captured.err
    assert secret not in captured.out + captured.err
    scoped = sim.tokens.issue_access(scopes=("zap",))
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", scoped)
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "zap:runs scope" in captured.err.strip().splitlines()[-1]
    assert scoped not in captured.out + captured.err


def test_unreachable_api_and_exhausted_retries_exit_1(make_simulator, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", "t")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", "http://127.0.0.1:9")  # discard port
    monkeypatch.setenv("SOURCES__ZAP_RUNS__MAX_RETRIES", "1")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BACKOFF_BASE", "0.01")
    assert main([]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: Cannot reach the Zapier API at http://127.0.0.1:9")
    sim = make_simulator(faults=Faults(error_rate=1.0))
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", sim.base_url)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", sim.token)
    assert main([]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "gave up after 1 retries" in line and sim.token not in line


def test_demo_runs_end_to_end(demo_run):
    done, folder = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert "OK" in done.stdout and "models     13 rebuilt" in done.stdout
    assert "Last 7 days:" in done.stdout and "Dashboard:" in done.stdout
    assert (folder / "zap_runs_demo.duckdb").exists()
    assert 10_000 < (folder / "zap_runs_report.html").stat().st_size < 600_000, "self-contained, small"
    assert re.search(r"^  alerts     [1-9]\d* sent \(demo [1-9]\d*\)", done.stdout, re.M), done.stdout
    assert count(folder / "zap_runs_demo.duckdb") > 10_000


def test_duckdb_loads_under_a_memory_cap_with_two_threads(tmp_path, monkeypatch):
    """DuckDB's defaults (80 % of RAM, a thread per core) are capped for the load: each inserting
    thread holds its own row groups, so a cap that fits 2 cores would run out on 16. The cap
    follows duckdb_memory_limit for each new pipeline, in one process too."""
    from pipelines.zap_runs.warehouse.pipeline import make_pipeline

    def load_settings(name: str) -> tuple:
        pipeline = make_pipeline("duckdb", "zapier", credentials=str(tmp_path / f"{name}.duckdb"))
        with pipeline.sql_client() as client:
            return client.execute_sql(
                "select current_setting('threads'), current_setting('memory_limit'), "
                "current_setting('preserve_insertion_order')")[0]

    assert load_settings("default") == (2, "61.0 MiB", False)  # 64MB
    monkeypatch.setenv("SOURCES__ZAP_RUNS__DUCKDB_MEMORY_LIMIT", "200MB")
    assert load_settings("raised") == (2, "190.7 MiB", False)
    # A global_config of the user's own, for this pipeline, is theirs: none of ours is added.
    monkeypatch.setenv("ZAP_RUNS__DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
                       '{"memory_limit": "300MB"}')
    assert load_settings("own")[1] == "286.1 MiB"


def test_duckdb_out_of_memory_names_the_knob_and_the_next_sync_finishes_the_load(sim_env, tmp_path):
    cmd = [sys.executable, "-m", "pipelines.zap_runs", "--log-level", "ERROR"]
    starved = subprocess.run(cmd, env={**os.environ, "SOURCES__ZAP_RUNS__DUCKDB_MEMORY_LIMIT": "2MB"},
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert starved.returncode == 1, starved.stderr
    assert starved.stderr.count("\n") == 1 and "Traceback" not in starved.stderr, starved.stderr
    assert starved.stderr.startswith("error: the load step failed: ")
    assert "Out of Memory Error" in starved.stderr
    assert "raise duckdb_memory_limit under [sources.zap_runs]" in starved.stderr
    done = subprocess.run(cmd, env=os.environ, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    truth = sim_env.world.truth(sim_env.world.clock.now() - timedelta(days=30))
    assert count(tmp_path / "zap_runs.duckdb") == len(truth)


def test_a_large_first_load_merges_under_a_small_duckdb_cap(make_simulator, tmp_path, monkeypatch):
    """dlt's merge dedup holds every staged step row in a window: under the cap it runs out of
    memory (a partner's first pass at 64MB did), so on DuckDB, where nothing is staged twice,
    the merge skips it (destinations.py). Here: 25,000 runs at 32MB; with dlt's dedup it fails."""
    world = small_world(seed=5, days=5.0, runs_per_day=5_000)
    sim = make_simulator(world)
    env = {**os.environ, "SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
           "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token, "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0",
           "SOURCES__ZAP_RUNS__DUCKDB_MEMORY_LIMIT": "32MB"}
    done = subprocess.run([sys.executable, "-m", "pipelines.zap_runs", "--log-level", "ERROR"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    steps = count(tmp_path / "zap_runs.duckdb", "zapier.zap_runs__steps")
    assert count(tmp_path / "zap_runs.duckdb") > 10_000 and steps > 40_000
    with duckdb.connect(str(tmp_path / "zap_runs.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) - count(distinct (account_id, id)) from zapier.zap_runs"
                           ).fetchone()[0] == 0


def test_help_answers_without_importing_dlt():
    """`--help` is quick (0.07 s against 0.8 s when it loaded dlt): the package and the parser
    import dlt only for the commands that need it."""
    probe = ("import sys\nfrom pipelines.zap_runs.cli.main import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('dlt loaded' if 'dlt' in sys.modules else 'dlt not loaded')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "python -m pipelines.zap_runs" in done.stdout
    assert done.stdout.strip().endswith("dlt not loaded")
