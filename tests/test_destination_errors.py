"""Destinations that would duplicate runs are refused, and rejected connection strings say why."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from pipelines.zap_runs.cli.main import main

from .conftest import small_world
from .warehouse import drop_datasets, duckdb_pipeline, postgres_pipeline, run_sync


def last_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.mark.parametrize("fmt,needle", [
    ("parquet", "filesystem with plain files can only append"),
    ("none", "filesystem with plain files can only append"),
    ("iceberg", "cannot replace a changed run's steps"),
])
def test_filesystem_formats_that_only_append_are_refused_before_reading(sim_env, tmp_path, monkeypatch,
                                                                         capsys, fmt, needle):
    bucket = tmp_path / "lake"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", bucket.as_uri())
    monkeypatch.setenv("SOURCES__ZAP_RUNS__TABLE_FORMAT", fmt)
    assert main(["--destination", "filesystem"]) == 2
    line = last_error_line(capsys)
    assert line.startswith("error: ") and needle in line
    assert 'set table_format = "delta" under [sources.zap_runs]' in line, "the message names the fix"
    assert not sim_env.zap_run_requests(), "refused before reading a single page"
    assert not bucket.exists() or not any(bucket.rglob("*.parquet"))


def test_a_destination_without_merge_is_refused(sim_env, capsys):
    assert main(["--destination", "qdrant"]) == 2
    line = last_error_line(capsys)
    assert "qdrant cannot merge a run with its steps" in line and "filesystem" in line
    assert not sim_env.zap_run_requests()


@pytest.mark.parametrize("dsn,needle", [
    ("postgresql://postgres@127.0.0.1:5432/test",
     "DESTINATION__POSTGRES__CREDENTIALS is set but has no password: dlt requires one (with trust "
     "auth any value works, e.g. postgresql://postgres:x@127.0.0.1:5432/mydb)."),
    ("postgresql://postgres:s3cr3t-pw@127.0.0.1:5432",
     "DESTINATION__POSTGRES__CREDENTIALS is set but has no database: write it as "
     "postgresql://postgres:x@127.0.0.1:5432/mydb."),
    ("postgres:s3cr3t-pw@127.0.0.1:5432/test",
     "DESTINATION__POSTGRES__CREDENTIALS is not a value dlt can read: write it as "
     "postgresql://postgres:x@127.0.0.1:5432/mydb."),
])
def test_a_rejected_connection_string_says_what_is_wrong(sim_env, monkeypatch, capsys, dsn, needle):
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    assert main(["--destination", "postgres"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == f"error: {needle}"
    assert "s3cr3t-pw" not in captured.out + captured.err, "the message never shows the value"
    assert not sim_env.zap_run_requests(), "the destination is checked before reading"


def test_credentials_from_secrets_toml_are_named_as_such(sim_env, tmp_path):
    """In a process of its own: dlt reads .dlt/secrets.toml of the folder it starts in."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        '[destination.postgres]\ncredentials = "postgresql://postgres@127.0.0.1:5432/test"\n')
    done = subprocess.run([sys.executable, "-m", "pipelines.zap_runs", "--destination", "postgres"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: [destination.postgres] credentials is set but has no password: dlt requires one")


def test_a_pipeline_moved_from_duckdb_keeps_dlts_merge_dedup_on_its_new_destination(
        make_simulator, past_clock, tmp_path, postgres_dsn):
    """DuckDB's merge skips dlt's dedup (destinations.py); dlt keeps that hint in the pipeline's
    schema, so a pipeline that moves to PostgreSQL must be given the dedup back."""
    sim = make_simulator(small_world(seed=8, days=2.0, clock=past_clock))
    on_duckdb = duckdb_pipeline(tmp_path / "first.duckdb", name="zap_runs_moves")
    run_sync(sim, on_duckdb)
    assert on_duckdb.default_schema.tables["zap_runs"].get("x-stage-data-deduplicated") is True
    on_postgres = postgres_pipeline(postgres_dsn, f"zr_moves_{uuid.uuid4().hex[:10]}",
                                    name="zap_runs_moves")
    assert on_postgres.default_schema.tables["zap_runs"].get("x-stage-data-deduplicated") is True
    try:
        run_sync(sim, on_postgres)
        assert not on_postgres.default_schema.tables["zap_runs"].get("x-stage-data-deduplicated")
    finally:
        drop_datasets(on_postgres)
