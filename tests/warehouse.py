"""Test helpers: run a sync against a simulator and read the warehouse back as API-shaped runs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dlt

from pipelines.simulator import Simulator
from pipelines.zap_runs.warehouse.pipeline import SyncResult, make_pipeline, sync

FAST = {"requests_per_minute": 0, "backoff_base": 0.01, "request_timeout": 5.0, "max_retries": 8}


def duckdb_pipeline(path, name: str = "zap_runs", dataset: str = "zapier") -> dlt.Pipeline:
    return make_pipeline("duckdb", dataset, pipeline_name=name, credentials=str(path))


def postgres_pipeline(dsn: str, dataset: str, name: str = "zap_runs_pg") -> dlt.Pipeline:
    return make_pipeline("postgres", dataset, pipeline_name=name, credentials=dsn)


def drop_datasets(pipeline: dlt.Pipeline) -> None:
    """Drop a test's dataset and its staging dataset (test datasets reuse names between runs)."""
    with pipeline.sql_client() as client:
        client.drop_dataset()
        with client.with_staging_dataset():
            if client.has_dataset():
                client.drop_dataset()


def pipeline_for(destination: str, tmp_path, request, name: str) -> dlt.Pipeline:
    """A DuckDB file in tmp_path, or a fresh dataset in the test PostgreSQL (its fixture asks
    for the server: required in CI, skipped with a reason elsewhere)."""
    if destination == "duckdb":
        return duckdb_pipeline(tmp_path / f"{name}.duckdb")
    dataset = f"zr_{name}_{uuid.uuid4().hex[:10]}"
    return postgres_pipeline(request.getfixturevalue("postgres_dsn"), dataset)


def run_sync(sim: Simulator, pipeline: dlt.Pipeline, **overrides: object) -> SyncResult:
    args = {"base_url": sim.base_url, "access_token": sim.token, **FAST, **overrides}
    return sync(pipeline, **args)


def _time(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC)


def normalise(run: dict) -> dict:
    """An API run in comparable form: datetimes, steps as a list, JSON values decoded."""
    return {
        "id": run["id"], "zap_id": int(run["zap_id"]), "zap_title": run["zap_title"],
        "status": run["status"], "start_time": _time(run["start_time"]),
        "end_time": _time(run["end_time"]),
        "steps": [(s["status"], _time(s["start_time"])) for s in run["steps"] or []],
        "data_in": exact(run.get("data_in")), "data_out": exact(run.get("data_out")),
    }


def exact(value: object) -> str:
    """Canonical JSON text: tells true from 1, 1.0 from 1, "" from null."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def warehouse_runs(pipeline: dlt.Pipeline, account: str | None = None) -> dict[str, dict]:
    """Every run in the warehouse (of `account` only, if given), rebuilt from zap_runs and
    zap_runs__steps by natural keys (account_id, run_id, step_number).

    Also checks what a reader relies on: every step row belongs to a run the runs table holds,
    to that run's current version (dlt's link), with its zap_id, numbered 1..n without gaps.
    """
    with pipeline.sql_client() as client:
        runs_t = client.make_qualified_table_name("zap_runs")
        steps_t = client.make_qualified_table_name("zap_runs__steps")
        where, args = ("where account_id = %s", [account]) if account is not None else ("", [])
        rows = client.execute_sql(
            f"select id, zap_id, zap_title, status, start_time, end_time, data_in, data_out, "
            f"_dlt_id from {runs_t} {where}", *args)
        steps = client.execute_sql(
            f"select run_id, step_number, zap_id, status, start_time, _dlt_parent_id from {steps_t} "
            f"{where} order by run_id, step_number", *args)
    by_run: dict[str, list] = {}
    links: dict[str, set] = {}
    for run_id, number, zap_id, status, start, parent in steps:
        found = by_run.setdefault(run_id, [])
        assert number == len(found) + 1, f"run {run_id}: step {number} follows {len(found)} steps"
        found.append((status, _time(start), int(zap_id)))
        links.setdefault(run_id, set()).add(parent)
    out: dict[str, dict] = {}
    for rid, zap_id, title, status, start, end, data_in, data_out, dlt_id in rows:
        assert rid not in out, f"duplicate run {rid} in the warehouse"
        own = by_run.pop(rid, [])
        assert links.get(rid, {dlt_id}) == {dlt_id}, f"run {rid} holds steps of another version"
        assert all(step_zap == int(zap_id) for *_, step_zap in own), f"run {rid}: step zap_id"
        out[rid] = {
            "id": rid, "zap_id": int(zap_id), "zap_title": title, "status": status,
            "start_time": _time(start), "end_time": _time(end),
            "steps": [step[:2] for step in own],
            "data_in": exact(json.loads(data_in)) if data_in is not None else None,
            "data_out": exact(json.loads(data_out)) if data_out is not None else None,
        }
    assert not by_run, f"step rows of {len(by_run)} runs not in the runs table: {sorted(by_run)[:3]}"
    return out


def assert_matches_truth(pipeline: dlt.Pipeline, truth: dict[str, dict],
                         account: str | None = None) -> None:
    """The warehouse holds exactly the truth's runs (of `account`, if given), field for field."""
    stored = warehouse_runs(pipeline, account)
    missing = sorted(set(truth) - set(stored))
    extra = sorted(set(stored) - set(truth))
    assert not missing, f"{len(missing)} runs missing, e.g. {missing[:3]}"
    assert not extra, f"{len(extra)} runs not in the truth, e.g. {extra[:3]}"
    stale = [rid for rid, run in truth.items() if normalise(run) != stored[rid]]
    if stale:
        rid = stale[0]
        raise AssertionError(f"{len(stale)} runs differ; e.g. {rid}:\n truth {normalise(truth[rid])}"
                             f"\n  held {stored[rid]}")


def sim_oauth(sim: Simulator, store) -> dict[str, str]:
    """Source arguments for OAuth refresh against the simulator's token endpoint."""
    return {"client_id": "sim-client", "client_secret": "sim-secret",
            "token_url": sim.base_url + "/oauth/token/", "token_store_path": str(store)}


def set_env(monkeypatch, db=None, **sources: object) -> None:
    """The CLI's settings as environment variables (subprocesses inherit them): each source
    argument as SOURCES__ZAP_RUNS__<NAME>, and `db` as the DuckDB destination's file."""
    for name, value in sources.items():
        monkeypatch.setenv(f"SOURCES__ZAP_RUNS__{name.upper()}", str(value))
    if db is not None:
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(db))


def assert_shown_nowhere(secrets: set[str], texts: dict[str, str], *roots) -> None:
    """None of `secrets` is in `texts` (name -> text, e.g. stdout) or in any file under `roots`
    (files or folders: the DuckDB file, dlt's data folder with its trace and state)."""
    haystacks = dict(texts)
    for root in roots:
        root = Path(root)
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if path.is_file():
                haystacks[str(path)] = path.read_bytes().decode("latin-1")
    for where, text in haystacks.items():
        shown = [secret for secret in secrets if secret in text]
        assert not shown, f"a secret shows in {where}"
