"""Partners: many accounts in one pass, one rate budget, isolated failures, each account's
warehouse rows = its truth (DuckDB and PostgreSQL)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.simulator import Faults, Simulator
from pipelines.zap_runs.accounts.state import read_states
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.warehouse import project
from pipelines.zap_runs.warehouse.pipeline import logged_sync, sync

from .conftest import on_world_time, small_world
from .warehouse import (
    FAST,
    assert_matches_truth,
    assert_shown_nowhere,
    drop_datasets,
    duckdb_pipeline,
    pipeline_for,
    set_env,
    sim_oauth,
    warehouse_runs,
)

HOSTILE = dict(error_rate=0.05, html_error_rate=0.03, truncate_rate=0.03, short_page_rate=0.2,
               drop_next_rate=0.2, max_limit=37, fault_retry_after=0)


def serve(accounts: dict, clock, **kwargs) -> Simulator:
    """A started simulator of these accounts (name -> World), unpaced unless asked."""
    kwargs.setdefault("rate_limit", None)
    return Simulator(accounts=list(accounts.items()), clock=clock, **kwargs).start()


def entries(sim: Simulator, names=None) -> list[dict]:
    return [{"name": name, "access_token": sim.accounts[name].token}
            for name in (names or sim.accounts)]


def log_rows(pipeline, account: str) -> list[tuple]:
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("zap_runs_sync_log")
        return client.execute_sql(f"select result, error from {table} where account_id = %s "
                                  "order by started_at", account)


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_each_account_equals_its_truth_with_faults_and_one_revoked_mid_run(
        destination, past_clock, tmp_path, request):
    # twin-a and twin-b are the same world: the same run and zap ids in two accounts.
    worlds = {"twin-a": small_world(seed=3, days=4, clock=past_clock),
              "twin-b": small_world(seed=3, days=4, clock=past_clock),
              "other": small_world(seed=11, days=4, clock=past_clock, runs_per_day=150),
              "gone": small_world(seed=5, days=4, clock=past_clock, runs_per_day=150)}
    sim = serve(worlds, past_clock, faults=Faults(**HOSTILE))
    pipeline = pipeline_for(destination, tmp_path, request, "partners")
    accounts = entries(sim)
    try:
        first = logged_sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
        assert [a.result for a in first.accounts] == ["success"] * 4
        past_clock.advance(timedelta(hours=5))
        seen = []

        def revoke_mid_run(record: dict) -> None:
            if record.get("account") == "gone":
                seen.append(record)
                if len(seen) == 2:  # its first page of this pass went through
                    sim.revoke("gone")

        sim.on_request = revoke_mid_run
        second = logged_sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
        by_name = {a.account: a for a in second.accounts}
        assert by_name["gone"].result == "failed" and "401" in by_name["gone"].error
        assert all(by_name[n].result == "success" for n in ("twin-a", "twin-b", "other"))
        sim.on_request = None
        for hours in (14, 0.5, 20):
            past_clock.advance(timedelta(hours=hours))
            result = logged_sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
            assert {a.account: a.result for a in result.accounts} == {
                "twin-a": "success", "twin-b": "success", "other": "success", "gone": "skipped"}
        for name in ("twin-a", "twin-b", "other"):
            assert_matches_truth(pipeline, worlds[name].truth(), account=name)
        assert len(warehouse_runs(pipeline, "twin-a")) == len(worlds["twin-a"].truth()) > 500
        # What the revoked account loaded before its token died is its own, and never stale
        # beyond what it last read: every row is one of its runs.
        assert set(warehouse_runs(pipeline, "gone")) <= set(worlds["gone"].truth())
        assert [r for r, _ in log_rows(pipeline, "gone")] == [
            "success", "failed", "skipped", "skipped", "skipped"]
        assert sum(a.retries for a in first.accounts) > 0, "the faults should have forced retries"
    finally:
        sim.stop()
        if destination == "postgres":
            drop_datasets(pipeline)


def results_of(result) -> dict[str, str]:
    """Each account's result in a pass (a pass reads the due accounts most valuable first)."""
    return {a.account: a.result for a in result.accounts}


def test_new_credentials_bring_a_skipped_account_back(past_clock, tmp_path):
    worlds = {"a": small_world(seed=3, days=2, clock=past_clock),
              "b": small_world(seed=4, days=2, clock=past_clock)}
    sim = serve(worlds, past_clock)
    pipeline = pipeline_for("duckdb", tmp_path, None, "back")
    try:
        sim.revoke("b")
        accounts = entries(sim)
        first = sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
        assert results_of(first) == {"a": "success", "b": "failed"}
        skipped = sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
        assert results_of(skipped) == {"a": "success", "b": "skipped"}
        assert len([r for r in sim.zap_run_requests() if r["status"] == 401]) == 1, \
            "the 401 of the first pass; a skipped account costs no request"
        accounts[1]["access_token"] = sim.issue_access("b")  # the user connected again
        back = sync(pipeline, base_url=sim.base_url, accounts=accounts, **FAST)
        assert results_of(back) == {"a": "success", "b": "success"}
        assert_matches_truth(pipeline, worlds["b"].truth(), account="b")
    finally:
        sim.stop()


def test_a_pass_shares_one_pacer_and_meets_no_429(past_clock, tmp_path):
    worlds = {f"q{i}": small_world(seed=20 + i, days=1, clock=past_clock, runs_per_day=40)
              for i in range(8)}
    # The server allows 10 requests a second; the pass asks for 9 a second across all accounts.
    sim = serve(worlds, past_clock, rate_limit=10, rate_window=1.0, cooldown=1.0, partner_limit=None)
    pipeline = pipeline_for("duckdb", tmp_path, None, "paced")
    try:
        result = sync(pipeline, base_url=sim.base_url, accounts=entries(sim),
                      **{**FAST, "requests_per_minute": 540})
        assert [a.result for a in result.accounts] == ["success"] * 8
        assert result.rate_limited == 0
        times = [r["at"] for r in sim.zap_run_requests()]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # One pacer across accounts: no burst where one account hands over to the next.
        assert len(times) >= 16 and min(gaps) > 60 / 540 * 0.75, min(gaps)
    finally:
        sim.stop()


def test_new_accounts_backfills_are_read_in_parts_after_the_others(past_clock, tmp_path):
    worlds = {f"old{i}": small_world(seed=30 + i, days=2, clock=past_clock, runs_per_day=50)
              for i in range(3)}
    sim = serve(worlds, past_clock)
    pipeline = pipeline_for("duckdb", tmp_path, None, "fair")
    args = {**FAST, "base_url": sim.base_url, "backfill_pages_per_pass": 5}
    # The parts end where the sync's clock says now: on the world's time, as Zapier's and a real
    # sync's clocks agree (on the real clock, three days ahead, the last part's end was in the
    # server's future, and the runs the world made after it were behind the cursor).
    with on_world_time(past_clock):
        _backfills_in_parts(sim, pipeline, worlds, past_clock, args)


def _backfills_in_parts(sim, pipeline, worlds, past_clock, args) -> None:
    try:
        sync(pipeline, accounts=entries(sim), **args)
        for name, seed in (("big", 40), ("big2", 41)):
            worlds[name] = sim.add_account(name, small_world(seed=seed, days=6, clock=past_clock,
                                                             runs_per_day=400)).world
        past_clock.advance(timedelta(hours=2))
        # Their histories from the first hour of the window: every part is full.
        args["since"] = (past_clock.now() - timedelta(days=6, hours=3)).isoformat()
        before = len(sim.requests)
        passes = []
        for _ in range(20):
            result = sync(pipeline, accounts=entries(sim), **args)
            passes.append({a.account: a for a in result.accounts})
            states = read_states(pipeline, ("big", "big2"))
            if all(states.get(n, {}).get("cursor") and not states[n].get("backfill_until")
                   for n in ("big", "big2")):
                break
            past_clock.advance(timedelta(minutes=15))
        first = [r.get("account") for r in sim.requests[before:]]
        first = first[:min(first.index("big"), first.index("big2"))]
        # The accounts already caught up were read before the new accounts' backfills began.
        assert set(first) == {"old0", "old1", "old2"}
        # The pass's backfill pages went to one account; the other waited, reading nothing.
        assert sorted(passes[0][n].result for n in ("big", "big2")) == ["deferred", "success"]
        waiting = next(passes[0][n] for n in ("big", "big2") if passes[0][n].result == "deferred")
        assert waiting.requests == 0
        # ~2,400 runs each at 100 a page need more than 5 pages: read in parts.
        assert len(passes) >= 6
        for outcomes in passes:
            # A pass's backfills read 5 pages and what the counts that found the part cost.
            spent = [outcomes[n].progress.spend.by_purpose for n in ("big", "big2")
                     if outcomes[n].result == "success"]
            assert sum(p["new"] + p["lookback"] for p in spent) <= 5 + 5 * len(spent), spent
            assert all(outcomes[f"old{i}"].result == "success" for i in range(3))
        for name, world in worlds.items():
            assert_matches_truth(pipeline, world.truth(), account=name)
    finally:
        sim.stop()


def test_many_accounts_from_a_file_exit_codes_and_status(past_clock, tmp_path, monkeypatch, capsys):
    worlds = {name: small_world(seed=50 + i, days=1, clock=past_clock, runs_per_day=30)
              for i, name in enumerate(["acme", "globex", "initech"])}
    sim = serve(worlds, past_clock)
    try:
        file = tmp_path / "accounts.jsonl"
        lines = [json.dumps(e) for e in entries(sim)] + [json.dumps({"name": "nokey"})]
        file.write_text("\n".join(lines) + "\n")
        set_env(monkeypatch, tmp_path / "p.duckdb", base_url=sim.base_url, accounts_file=file,
                requests_per_minute=0, backoff_base=0.01)
        assert main([]) == 4, "a bad entry: not read, the accounts loaded"
        out = capsys.readouterr()
        assert "OK, BUT 1 BAD ENTRY IN THE ACCOUNTS CONFIGURATION" in out.out
        assert f"  BAD ENTRY  {file} line 4" in out.out
        assert "1 bad entry in the accounts configuration" in out.err
        file.write_text("\n".join(lines[:3]) + "\n")
        assert main([]) == 0
        sim.revoke("globex")
        assert main([]) == 4
        assert main(["status"]) == 4
        status = capsys.readouterr().out
        assert "FAILING        globex" in status and "401" in status
        for name in ("acme", "globex", "initech"):
            sim.revoke(name)
        assert main([]) == 1, "every account failed"
        assert "every account failed" in capsys.readouterr().err
        assert main(["--shard", "0/2"]) == 2, "sharding is refused on DuckDB"
        assert "concurrent writers" in capsys.readouterr().err
    finally:
        sim.stop()


def test_secrets_of_many_accounts_never_show(past_clock, tmp_path, monkeypatch, capsys):
    worlds = {name: small_world(seed=60 + i, days=1, clock=past_clock, runs_per_day=30)
              for i, name in enumerate(["r1", "r2", "s1", "dead"])}
    sim = serve(worlds, past_clock, access_ttl=timedelta(hours=1))
    try:
        refresh = {name: sim.issue_refresh(name) for name in ("r1", "r2")}
        accounts = [{"name": n, "refresh_token": t} for n, t in refresh.items()]
        accounts += [{"name": n, "access_token": sim.accounts[n].token} for n in ("s1", "dead")]
        file = tmp_path / "accounts.jsonl"
        file.write_text("\n".join(json.dumps(a) for a in accounts) + "\n")
        store = tmp_path / "tokens.json"
        db = tmp_path / "s.duckdb"
        set_env(monkeypatch, db, base_url=sim.base_url, accounts_file=file,
                requests_per_minute=0, **sim_oauth(sim, store))
        sim.revoke("dead")
        assert main(["--log-level", "DEBUG"]) == 4
        sim.faults.error_rate = 1.0
        monkeypatch.setenv("SOURCES__ZAP_RUNS__MAX_RETRIES", "1")
        monkeypatch.setenv("SOURCES__ZAP_RUNS__BACKOFF_BASE", "0.01")
        assert main(["--log-level", "DEBUG"]) == 1
        assert main(["status"]) == 4
        captured = capsys.readouterr()
        stores = sorted((tmp_path / "tokens").glob("*.json"))
        assert [p.stem for p in stores] == ["r1", "r2"]
        assert oct(stores[0].parent.stat().st_mode & 0o777) == "0o700"
        secrets = {*refresh.values(), "sim-secret", sim.accounts["s1"].token,
                   sim.accounts["dead"].token}
        for path in stores:
            saved = json.loads(path.read_text())
            assert oct(path.stat().st_mode & 0o777) == "0o600"
            secrets |= {saved["refresh_token"], saved["access_token"]}
        assert_shown_nowhere(secrets, {"stdout": captured.out, "stderr": captured.err}, db,
                             tmp_path / "dlt-data")
    finally:
        sim.stop()


def test_rotated_tokens_reach_the_embedding_apps_callback(past_clock, tmp_path):
    worlds = {"r1": small_world(seed=70, days=1, clock=past_clock, runs_per_day=20),
              "r2": small_world(seed=71, days=1, clock=past_clock, runs_per_day=20)}
    sim = serve(worlds, past_clock, access_ttl=timedelta(hours=1))
    rotated = []
    try:
        accounts = [{"name": n, "refresh_token": sim.issue_refresh(n)} for n in worlds]
        result = sync(pipeline_for("duckdb", tmp_path, None, "cb"), base_url=sim.base_url,
                      accounts=accounts, **sim_oauth(sim, tmp_path / "t.json"),
                      on_token_rotated=lambda *args: rotated.append(args), **FAST)
        assert [a.result for a in result.accounts] == ["success", "success"]
        assert [r[0] for r in rotated] == ["r1", "r2"]
        for name, refresh, access, _expires in rotated:
            saved = json.loads((tmp_path / "t" / f"{name}.json").read_text())
            assert (saved["refresh_token"], saved["access_token"]) == (refresh, access)
    finally:
        sim.stop()


@pytest.mark.postgres
def test_two_shards_at_once_into_postgres_equal_one_process(past_clock, tmp_path, request):
    import subprocess
    import sys

    from .warehouse import postgres_pipeline

    dsn = request.getfixturevalue("postgres_dsn")
    worlds = {f"acct-{i}": small_world(seed=80 + i, days=2, clock=past_clock, runs_per_day=120)
              for i in range(6)}
    sim = serve(worlds, past_clock)
    file = tmp_path / "accounts.jsonl"
    file.write_text("\n".join(json.dumps(e) for e in entries(sim)) + "\n")
    suffix = os.urandom(4).hex()
    one = postgres_pipeline(dsn, f"zr_one_{suffix}", name="zap_runs")
    sharded = postgres_pipeline(dsn, f"zr_shards_{suffix}", name="zap_runs_probe")
    env = {**os.environ, "SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
           "SOURCES__ZAP_RUNS__ACCOUNTS_FILE": str(file),
           "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0",
           "DESTINATION__POSTGRES__CREDENTIALS": dsn}
    try:
        single = sync(one, base_url=sim.base_url, accounts_file=str(file), **FAST)
        assert [a.result for a in single.accounts] == ["success"] * 6
        cmd = [sys.executable, "-m", "pipelines.zap_runs", "--destination", "postgres",
               "--dataset", sharded.dataset_name, "--log-level", "WARNING"]
        workers = [subprocess.Popen([*cmd, "--shard", f"{i}/2"], env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for i in range(2)]
        outputs = [w.communicate(timeout=300) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        for out, _ in outputs:
            assert "accounts   " in out and "models     not rebuilt" in out
        counts = [int(out.split("accounts   ")[1].split(":")[0]) for out, _ in outputs]
        assert sum(counts) == 6 and min(counts) >= 1, counts
        for name, world in worlds.items():
            assert warehouse_runs(sharded, name) == warehouse_runs(one, name)
            assert_matches_truth(sharded, world.truth(), account=name)
        # Forgetting an account of a shard names the shard that read it last (its state row).
        from pipelines.zap_runs.accounts.entries import shard_of

        index = shard_of("acct-0", 2)
        wrong = subprocess.run([*cmd, "forget", "--account", "acct-0"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
        assert wrong.returncode == 2 and f"zap_runs_shard_{index}_of_2" in wrong.stderr
        right = subprocess.run([*cmd, "forget", "--account", "acct-0", "--shard", f"{index}/2"],
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert right.returncode == 0, right.stderr
        assert warehouse_runs(sharded, "acct-0") == {}
        assert warehouse_runs(sharded, "acct-1") == warehouse_runs(one, "acct-1")
    finally:
        sim.stop()
        drop_datasets(one)
        drop_datasets(sharded)
        with sharded.sql_client() as client:
            for i in range(2):
                name = f"{sharded.dataset_name}_zap_runs_shard_{i}_of_2_staging"
                client.execute_sql(f'drop schema if exists "{name}" cascade')


def test_tables_from_before_accounts_get_the_account_once(make_simulator, past_clock, tmp_path):
    import duckdb

    world = small_world(seed=12, days=2, clock=past_clock)
    sim = make_simulator(world)
    pipeline = pipeline_for("duckdb", tmp_path, None, "old")
    sync(pipeline, base_url=sim.base_url, access_token=sim.token, **FAST)
    # The layout of the version before accounts: no account_id anywhere.
    db = Path(pipeline.destination_client().config.credentials.database)
    with duckdb.connect(str(db)) as con:
        for schema in ("zapier", "zapier_staging"):
            for table in ("zap_runs", "zap_runs__steps"):
                con.execute(f"alter table {schema}.{table} drop column account_id")
    past_clock.advance(timedelta(hours=8))
    result = sync(pipeline, base_url=sim.base_url, access_token=sim.token, **FAST)
    assert result.runs_updated > 0, "runs read again replace their old rows"
    assert_matches_truth(pipeline, world.truth(), account="default")
    with duckdb.connect(str(db)) as con:
        for table in ("zap_runs", "zap_runs__steps"):
            assert con.execute(f"select count(*) from zapier.{table} where account_id is null "
                               "or account_id <> 'default'").fetchone()[0] == 0


def test_state_from_before_accounts_becomes_the_default_accounts():
    from pipelines.zap_runs.accounts.state import legacy_states

    state = {"cursor": "2026-11-01T00:00:00.000000Z", "watched": {"r1": [1]},
             "last_window": [None, "2026-11-01T00:00:00.000000Z"], "accounts": {"b": {"cursor": "x"}}}
    accounts = legacy_states(state, "acme")
    assert accounts == {"acme": {"cursor": "2026-11-01T00:00:00.000000Z", "watched": {"r1": [1]},
                                 "last_window": [None, "2026-11-01T00:00:00.000000Z"]},
                        "b": {"cursor": "x"}}
    assert state == {}, "taken out of the pipeline state"
    assert legacy_states(state, "acme") == {}, "once moved, nothing is left to move"


def test_accounts_from_secrets_toml_tables_in_one_load_package(past_clock, tmp_path):
    """In a process of its own: dlt reads .dlt/secrets.toml of the folder it starts in."""
    import subprocess
    import sys

    worlds = {name: small_world(seed=100 + i, days=1, clock=past_clock, runs_per_day=40)
              for i, name in enumerate(["acme", "globex"])}
    sim = serve(worlds, past_clock)
    try:
        secrets = tmp_path / ".dlt" / "secrets.toml"
        secrets.parent.mkdir()
        secrets.write_text("".join(f'[sources.zap_runs.accounts.{name}]\naccess_token = '
                                   f'"{sim.accounts[name].token}"\n\n' for name in worlds)
                           + '[sources.zap_runs.accounts.broken]\nrefresh_token = "rt-x"\n\n'
                           + '[sources.zap_runs.data_policy]\ndata_in = "redact"\n'
                           'redact_keys = ["email"]\nredact_salt = "salt-SECRET-42"\n')
        db = tmp_path / "toml.duckdb"
        env = {**os.environ, "SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
               "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0",
               "DESTINATION__DUCKDB__CREDENTIALS": str(db)}
        done = subprocess.run([sys.executable, "-m", "pipelines.zap_runs", "--log-level", "ERROR"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 4, done.stderr
        assert "accounts   2: 2 synced, 0 failed, 0 skipped; 1 bad entry in the configuration, " \
            "not read" in done.stdout
        assert "BAD ENTRY  [sources.zap_runs.accounts.broken]" in done.stdout
        assert "rt-x" not in done.stdout + done.stderr
        # One pass, one load package, however many accounts it read.
        loaded = list((project.pipelines_dir(folder=tmp_path) / "zap_runs" / "load" / "loaded").iterdir())
        assert len(loaded) == 1
        stored = warehouse_runs(duckdb_pipeline(db), "acme")
        assert any("hmac-sha256:" in (run["data_in"] or "") for run in stored.values())
        # Tokens and the salt show nowhere: not in the trace, the state or any other file.
        secrets = {sim.accounts[name].token for name in worlds} | {"rt-x", "salt-SECRET-42"}
        assert_shown_nowhere(secrets, {"stdout": done.stdout, "stderr": done.stderr}, db,
                             tmp_path / "dlt-data")
    finally:
        sim.stop()


def test_an_account_whose_requests_keep_failing_pauses_for_a_day(past_clock, tmp_path,
                                                                monkeypatch):
    from pipelines.zap_runs.accounts import sweep

    worlds = {"fine": small_world(seed=110, days=1, clock=past_clock, runs_per_day=30),
              "broken": small_world(seed=111, days=1, clock=past_clock, runs_per_day=30)}
    sim = serve(worlds, past_clock)

    def fail(*_args, **_kwargs):
        raise RuntimeError("the account's shard of Zapier is down")

    worlds["broken"].page = fail  # every request of the account fails (the server answers 500)
    pipeline = pipeline_for("duckdb", tmp_path, None, "failing")
    args = {**FAST, "max_retries": 1, "base_url": sim.base_url, "accounts": entries(sim)}
    try:
        results = [sync(pipeline, **args) for _ in range(4)]
        broken = [next(a for a in r.accounts if a.account == "broken") for r in results]
        assert [b.result for b in broken] == ["failed", "failed", "failed", "skipped"]
        assert "failed in 3 passes in a row" in broken[3].error and broken[3].requests == 0
        assert all(results_of(r)["fine"] == "success" for r in results)
        later = sweep.utcnow() + timedelta(hours=25)
        monkeypatch.setattr(sweep, "utcnow", lambda: later)
        again = sync(pipeline, **args)
        assert next(a for a in again.accounts if a.account == "broken").result == "failed"
    finally:
        sim.stop()


def test_a_token_endpoint_outage_is_tried_again_not_taken_for_a_refusal(past_clock, tmp_path):
    worlds = {"r1": small_world(seed=120, days=1, clock=past_clock, runs_per_day=20),
              "s1": small_world(seed=121, days=1, clock=past_clock, runs_per_day=20)}
    sim = serve(worlds, past_clock, access_ttl=timedelta(hours=1))
    pipeline = pipeline_for("duckdb", tmp_path, None, "outage")
    accounts = [{"name": "r1", "refresh_token": sim.issue_refresh("r1")},
                {"name": "s1", "access_token": sim.accounts["s1"].token}]
    args = {**FAST, **sim_oauth(sim, tmp_path / "t.json"), "base_url": sim.base_url,
            "accounts": accounts}
    del args["token_url"]
    try:
        for _ in range(2):  # nothing listens on port 9: the token endpoint is unreachable
            down = {a.account: a for a in sync(pipeline, token_url="http://127.0.0.1:9/oauth/token/",
                                               **args).accounts}
            assert (down["r1"].result, down["s1"].result) == ("failed", "success")
            assert "cannot reach the token endpoint" in down["r1"].error
        back = sync(pipeline, token_url=sim.base_url + "/oauth/token/", **args)
        assert {a.result for a in back.accounts} == {"success"}
        assert_matches_truth(pipeline, worlds["r1"].truth(), account="r1")
    finally:
        sim.stop()


def test_one_account_becoming_many_keeps_its_rotated_token(past_clock, tmp_path):
    worlds = {"default": small_world(seed=130, days=1, clock=past_clock, runs_per_day=20),
              "new": small_world(seed=131, days=1, clock=past_clock, runs_per_day=20)}
    sim = serve(worlds, past_clock, access_ttl=timedelta(hours=1))
    pipeline = pipeline_for("duckdb", tmp_path, None, "grow")
    refresh = sim.issue_refresh("default")
    oauth = {**sim_oauth(sim, tmp_path / "tokens.json"), "base_url": sim.base_url, **FAST}
    try:
        sync(pipeline, refresh_token=refresh, **oauth)  # rotates: `refresh` is dead now
        past_clock.advance(timedelta(hours=2))
        accounts = [{"name": "default", "refresh_token": refresh},
                    {"name": "new", "access_token": sim.accounts["new"].token}]
        result = sync(pipeline, accounts=accounts, **oauth)
        assert {a.account: a.result for a in result.accounts} == {"default": "success",
                                                                  "new": "success"}
        assert (tmp_path / "tokens" / "default.json").exists()
        assert not (tmp_path / "tokens.json").exists()
        assert_matches_truth(pipeline, worlds["default"].truth(), account="default")
    finally:
        sim.stop()


def test_status_names_failing_and_stale_accounts_and_the_ones_no_longer_synced():
    from datetime import UTC, datetime

    from pipelines.zap_runs.output.status import Status, format_accounts, troubled_accounts

    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def row(name, result, hours_ago, success_hours_ago):
        success = now - timedelta(hours=success_hours_ago) if success_hours_ago is not None else None
        return {"account_id": name, "result": result, "error": None if result == "success" else "401",
                "started_at": now - timedelta(hours=hours_ago), "last_success_at": success}

    accounts = [row("ok", "success", 0.5, 0.4), row("revoked", "skipped", 0.5, 30),
                row("lagging", "deferred", 0.5, 8), row("removed", "success", 48, 48)]
    failing, stale = troubled_accounts(accounts, 6, now)
    assert [a["account_id"] for a in failing] == ["revoked"]
    assert [a["account_id"] for a in stale] == ["lagging"]
    status = Status("duckdb dataset 'zapier'", now, 6, None, {"ended_at": now}, None, accounts)
    text = "\n".join(format_accounts(status))
    assert "4 accounts: 1 ok, 1 failing, 1 stale, 1 no longer synced" in text
    assert "FAILING        revoked" in text and "STALE          lagging" in text
    assert "NOT SYNCED     removed" in text and "forget --account removed" in text
    assert status.exit_code == 4
