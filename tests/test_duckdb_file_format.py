"""The DuckDB file opens in an older DuckDB (1.4, as dashboard tools embed), demo and sync alike."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.common.settings import DEFAULT_STORAGE_VERSION
from pipelines.zap_runs.warehouse.duckdb_file import file_storage_version
from pipelines.zap_runs.warehouse.models import build_models

from .conftest import small_world
from .warehouse import duckdb_pipeline, run_sync

OLD_CLIENT_ENV = "ZAP_RUNS_OLD_DUCKDB_PYTHON"
OLD_CLIENT_PATH = Path(__file__).resolve().parent.parent / ".venv-duckdb-old" / "bin" / "python"
# Run by the old client: open the file read-only, print its version and each query's rows.
READ = ("import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "rows = [con.execute(q).fetchall() for q in sys.argv[2:]]\n"
        "print(json.dumps({'version': duckdb.__version__, 'rows': rows}, default=str))\n")
QUERIES = ("select count(*) from zapier.zap_runs",
           "select count(*) from zapier.zap_runs__steps",
           "select count(*), sum(count_runs) from zapier.zap_error_rates_daily",
           "select count(*) from zapier.zap_health",
           "select count(*) from zapier.stg_zap_runs")


@pytest.fixture(scope="module")
def old_duckdb() -> str:
    """A Python with DuckDB 1.x: $ZAP_RUNS_OLD_DUCKDB_PYTHON or .venv-duckdb-old (.ci/run makes
    it); skipped with a reason locally when absent, required in CI."""
    python = os.environ.get(OLD_CLIENT_ENV) or str(OLD_CLIENT_PATH)
    problem = None
    if not Path(python).exists():
        problem = f"no old DuckDB client at {python}"
    else:
        done = subprocess.run([python, "-c", "import duckdb; print(duckdb.__version__)"],
                              capture_output=True, text=True, timeout=60)
        version = done.stdout.strip()
        if done.returncode != 0 or not version.startswith("1."):
            problem = f"{python} has no DuckDB 1.x ({version or done.stderr.strip()[-200:]})"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} and CI=true: .ci/run must install it")
        pytest.skip(f"{problem}: python3 -m venv .venv-duckdb-old && "
                    f".venv-duckdb-old/bin/pip install 'duckdb==1.4.*' (or set {OLD_CLIENT_ENV})")
    return python


def read_with(python: str, path: Path, *queries: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", READ, str(path), *queries], capture_output=True,
                          text=True, timeout=120)


def old_rows(python: str, path: Path, queries: tuple[str, ...] = QUERIES) -> list:
    done = read_with(python, path, *queries)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["version"].startswith("1.4."), out["version"]
    return out["rows"]


def new_rows(path: Path, queries: tuple[str, ...] = QUERIES) -> list:
    with duckdb.connect(str(path), read_only=True) as con:
        return [json.loads(json.dumps(con.execute(q).fetchall(), default=str)) for q in queries]


def test_a_synced_file_with_models_opens_in_duckdb_1_4(make_simulator, past_clock, tmp_path,
                                                       old_duckdb):
    sim = make_simulator(small_world(clock=past_clock))
    db = tmp_path / "zap_runs.duckdb"
    pipeline = duckdb_pipeline(db)
    run_sync(sim, pipeline)
    past_clock.advance(timedelta(hours=6))
    run_sync(sim, duckdb_pipeline(db))  # a merge: DuckDB 2.0 writes the file again
    build_models(pipeline)
    assert file_storage_version(str(db)) == f"{DEFAULT_STORAGE_VERSION}+"
    rows = old_rows(old_duckdb, db)
    assert rows == new_rows(db)
    assert rows[0][0][0] > 1000 and rows[3][0][0] > 0


def test_the_demo_file_opens_in_duckdb_1_4(tmp_path, old_duckdb):
    done = subprocess.run([sys.executable, "-m", "pipelines.zap_runs", "--demo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    db = tmp_path / "zap_runs_demo.duckdb"
    rows = old_rows(old_duckdb, db)
    assert rows == new_rows(db)
    assert rows[0][0][0] > 10_000


def test_the_setting_picks_the_format_and_latest_shuts_old_clients_out(
        make_simulator, tmp_path, monkeypatch, old_duckdb):
    sim = make_simulator()
    monkeypatch.setenv("SOURCES__ZAP_RUNS__DUCKDB_STORAGE_VERSION", "v1.2.0")
    older = tmp_path / "older.duckdb"
    run_sync(sim, duckdb_pipeline(older))
    assert file_storage_version(str(older)) == "v1.2.0+"
    assert old_rows(old_duckdb, older, QUERIES[:2])[0][0][0] > 0
    monkeypatch.setenv("SOURCES__ZAP_RUNS__DUCKDB_STORAGE_VERSION", "latest")
    newest = tmp_path / "newest.duckdb"
    run_sync(sim, duckdb_pipeline(newest))
    assert file_storage_version(str(newest)).startswith("v2.")
    refused = read_with(old_duckdb, newest, QUERIES[0])
    assert refused.returncode != 0 and "version number" in refused.stderr, refused.stderr[-500:]


def test_a_newer_existing_file_is_left_as_it_is_with_a_warning(make_simulator, tmp_path, caplog):
    db = tmp_path / "made_by_duckdb_2.duckdb"
    duckdb.connect(str(db)).close()  # DuckDB 2.0's own format, as before this setting
    before = file_storage_version(str(db))
    assert before.startswith("v2.")
    with caplog.at_level(logging.WARNING, logger="pipelines.zap_runs.warehouse.duckdb_file"):
        run_sync(make_simulator(), duckdb_pipeline(db))
    warning = [r.getMessage() for r in caplog.records if "storage format" in r.getMessage()]
    assert len(warning) == 1 and str(db) in warning[0], caplog.text
    assert "does not rewrite" in warning[0] and "duckdb_storage_version" in warning[0]
    assert file_storage_version(str(db)) == before
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipelines.zap_runs.warehouse.duckdb_file"):
        duckdb_pipeline(tmp_path / "fresh.duckdb")
        duckdb_pipeline(tmp_path / "fresh.duckdb")  # now existing, in the configured format
    assert not caplog.records


@pytest.mark.parametrize("value", ["1.4", "v9.9.9"])
def test_a_bad_setting_exits_2_with_one_line(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", "t")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__DUCKDB_STORAGE_VERSION", value)
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("error: duckdb_storage_version") and value in err
    assert not (tmp_path / "zap_runs.duckdb").exists()


def test_a_file_converted_as_the_readme_says_opens_old_and_syncs_on(
        make_simulator, past_clock, tmp_path, monkeypatch, old_duckdb):
    sim = make_simulator(small_world(clock=past_clock))
    db = tmp_path / "zap_runs.duckdb"
    monkeypatch.setenv("SOURCES__ZAP_RUNS__DUCKDB_STORAGE_VERSION", "latest")  # an earlier file
    run_sync(sim, duckdb_pipeline(db))
    monkeypatch.delenv("SOURCES__ZAP_RUNS__DUCKDB_STORAGE_VERSION")
    with duckdb.connect() as con:
        con.execute(f"attach '{db}' as old (read_only)")
        con.execute(f"attach '{tmp_path / 'v1_4.duckdb'}' as new (storage_version 'v1.4.0')")
        con.execute("copy from database old to new")
    db.rename(tmp_path / "zap_runs.duckdb.bak")
    (tmp_path / "v1_4.duckdb").rename(db)
    past_clock.advance(timedelta(hours=6))
    result = run_sync(sim, duckdb_pipeline(db))
    assert result.runs_new > 0 and result.runs_new < result.runs_fetched  # went on from its cursor
    assert file_storage_version(str(db)) == "v1.4.0+"
    assert old_rows(old_duckdb, db, QUERIES[:2]) == new_rows(db, QUERIES[:2])
