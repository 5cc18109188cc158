"""`forget --account NAME` leaves nothing of the account: no row in any table (staging too),
no state in any version, no token store, no local copy; the data policy's redacted values
never reach the warehouse."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from dlt.common.versioned_state import decompress_state

from pipelines.simulator import Simulator
from pipelines.zap_runs.accounts.state import read_states
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.warehouse.pipeline import sync

from .conftest import small_world
from .warehouse import (
    FAST,
    assert_matches_truth,
    duckdb_pipeline,
    set_env,
    sim_oauth,
    warehouse_runs,
)


def configure(monkeypatch, sim, tmp_path, accounts) -> Path:
    file = tmp_path / "accounts.jsonl"
    file.write_text("\n".join(json.dumps(a) for a in accounts) + "\n")
    db = tmp_path / "f.duckdb"
    set_env(monkeypatch, db, base_url=sim.base_url, accounts_file=file, requests_per_minute=0,
            **sim_oauth(sim, tmp_path / "tokens.json"))
    return db


def tables_with_account(db: Path) -> list[tuple[str, str]]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select table_schema, table_name from information_schema.columns "
                           "where column_name = 'account_id'").fetchall()


def test_forget_leaves_nothing_of_the_account(past_clock, tmp_path, monkeypatch, capsys):
    import duckdb

    worlds = {name: small_world(seed=90 + i, days=2, clock=past_clock, runs_per_day=100)
              for i, name in enumerate(["keep", "leaver", "other"])}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None,
                    access_ttl=timedelta(hours=1)).start()
    try:
        accounts = [{"name": "keep", "access_token": sim.accounts["keep"].token},
                    {"name": "leaver", "refresh_token": sim.issue_refresh("leaver")},
                    {"name": "other", "access_token": sim.accounts["other"].token}]
        db = configure(monkeypatch, sim, tmp_path, accounts)
        assert main([]) == 0
        past_clock.advance(timedelta(hours=3))
        assert main([]) == 0
        pipeline = duckdb_pipeline(db)
        leaver_ids = set(warehouse_runs(pipeline, "leaver"))
        assert leaver_ids and (tmp_path / "tokens" / "leaver.json").exists()
        capsys.readouterr()

        assert main(["forget", "--account", "leaver"]) == 0
        out = capsys.readouterr().out
        assert "forgot account 'leaver'" in out and "models" in out

        # No row of it in any table that has accounts: data, staging, the sync log, the models.
        with duckdb.connect(str(db), read_only=True) as con:
            for schema, table in tables_with_account(db):
                left = con.execute(f'select count(*) from "{schema}"."{table}" '
                                   "where account_id = 'leaver'").fetchone()[0]
                assert left == 0, f"{schema}.{table} still holds {left} rows of the account"
            states = con.execute("select state from zapier._dlt_pipeline_state").fetchall()
        assert len(tables_with_account(db)) >= 8, "data, staging, log and models were checked"
        # No version of the state remembers it.
        for (blob,) in states:
            accounts_state = decompress_state(blob)["sources"]["zap_runs"]["resources"][
                "zap_runs"].get("accounts", {})
            assert "leaver" not in accounts_state
        assert read_states(duckdb_pipeline(db), ["leaver", "keep"]).keys() == {"keep"}
        # Nothing on disk: its token store is gone, and no local file names one of its runs.
        assert not (tmp_path / "tokens" / "leaver.json").exists()
        sample = sorted(leaver_ids)[:50]
        for path in Path(tmp_path / "dlt-data").rglob("*"):
            if path.is_file():
                text = path.read_bytes().decode("latin-1")
                assert not [rid for rid in sample if rid in text], f"{path} names its runs"
                assert '"leaver"' not in text, f"{path} names the account"

        # The others are untouched, and sync on without it.
        accounts = [a for a in accounts if a["name"] != "leaver"]
        configure(monkeypatch, sim, tmp_path, accounts)
        past_clock.advance(timedelta(hours=1))
        assert main([]) == 0
        for name in ("keep", "other"):
            assert_matches_truth(duckdb_pipeline(db), worlds[name].truth(), account=name)
        assert main(["forget", "--account", "nobody"]) == 2
        assert "has no rows and no state" in capsys.readouterr().err
    finally:
        sim.stop()


def test_redacted_and_dropped_values_never_reach_the_warehouse(past_clock, tmp_path):
    worlds = {"strict": small_world(seed=97, days=1, clock=past_clock, runs_per_day=200),
              "lenient": small_world(seed=97, days=1, clock=past_clock, runs_per_day=200)}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    pipeline = duckdb_pipeline(tmp_path / "p.duckdb")
    try:
        accounts = [{"name": "strict", "access_token": sim.accounts["strict"].token},
                    {"name": "lenient", "access_token": sim.accounts["lenient"].token,
                     "data_policy": {"data_out": "keep"}}]
        policy = {"data_in": "redact", "data_out": "drop", "redact_keys": ["email"],
                  "redact_salt": "pepper"}
        result = sync(pipeline, base_url=sim.base_url, accounts=accounts, data_policy=policy,
                      **FAST)
        assert [a.result for a in result.accounts] == ["success", "success"]
        truth = worlds["strict"].truth()
        emails = {run["data_in"]["email"] for run in truth.values()
                  if isinstance(run["data_in"], dict) and "email" in run["data_in"]}
        assert len(emails) > 50
        with pipeline.sql_client() as client:
            for table in ("zap_runs", "zap_runs__steps"):
                for dataset in (pipeline.dataset_name, pipeline.dataset_name + "_staging"):
                    # Every column of strict's rows; data_in of lenient's (it keeps data_out).
                    rows = client.execute_sql(f'select * from "{dataset}"."{table}" '
                                              "where account_id = 'strict'")
                    assert rows and "@example.com" not in repr(rows), f"{dataset}.{table}"
            lenient_in = client.execute_sql("select data_in from zap_runs where account_id = "
                                            "'lenient' and data_in like '%@example.com%'")
            assert not lenient_in, "the account's override keeps data_out only"
            strict_out = client.execute_sql(
                "select count(*), count(data_out) from zap_runs where account_id = 'strict'")[0]
            lenient_out = client.execute_sql(
                "select count(data_out) from zap_runs where account_id = 'lenient'")[0][0]
            hashed = client.execute_sql(
                "select data_in from zap_runs where account_id = 'strict' and data_in like "
                "'%hmac-sha256:%'")
        assert strict_out[0] == len(truth) and strict_out[1] == 0, "data_out dropped"
        assert lenient_out == len(truth), "the account's own policy keeps data_out"
        # The same email hashes the same way in both accounts' data_in: analysts can count it.
        assert len(hashed) > 50
        stored = warehouse_runs(pipeline, "strict")
        for rid, run in truth.items():
            data = run["data_in"]
            if isinstance(data, dict) and "email" in data:
                held = json.loads(stored[rid]["data_in"])
                assert held["email"].startswith("hmac-sha256:") and held["id"] == data["id"]
    finally:
        sim.stop()
