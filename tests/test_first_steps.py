"""What a new user meets first: configuration errors that are no account, bad entries reported
as entries, dates that make sense, --accounts-file, and no warning that contradicts the error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from pipelines.simulator import Simulator
from pipelines.zap_runs.cli.main import main

from .conftest import small_world
from .warehouse import set_env


def log_rows(path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select account_id, result, error from zapier.zap_runs_sync_log "
                           "order by started_at, account_id nulls last").fetchall()


def test_a_bad_since_is_no_account_and_status_stays_well(sim_env, tmp_path, capsys):
    assert main([]) == 0
    assert main(["--since", "last tuesday"]) == 2
    assert main(["--since", "2030-01-01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: since '2030-01-01' (--since or [sources.zap_runs] since) is in the "
                       "future: give the date to read runs from, today or earlier (dates are UTC).")
    assert [row[:2] for row in log_rows(tmp_path / "zap_runs.duckdb")] == [("default", "success")]
    assert main(["status"]) == 0
    assert "FAILING" not in capsys.readouterr().out


def test_since_today_is_taken(sim_env, capsys):
    assert main(["--since", datetime.now(UTC).date().isoformat()]) == 0


def test_a_passwordless_dsn_is_one_error_and_no_contradicting_warning(sim_env, monkeypatch, capsys,
                                                                      caplog):
    assert main([]) == 0  # this project's pipeline has loaded into DuckDB
    caplog.clear()
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://postgres@127.0.0.1:5432/test")
    assert main(["--destination", "postgres"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: ") and "password" in err.lower()
    said = caplog.text
    assert "could not record the sync outcome" not in said
    assert "in state differs" not in said
    assert said.count("last ran with duckdb; it loads into postgres now, as configured") == 1
    caplog.clear()
    assert main([]) == 0  # back to DuckDB: said once, then nothing
    assert caplog.text.count("last ran with postgres; it loads into duckdb now") == 1
    caplog.clear()
    assert main([]) == 0
    assert "differs" not in caplog.text and "last ran with" not in caplog.text


@pytest.fixture
def accounts_sim(past_clock):
    worlds = {name: small_world(seed=60 + i, days=1, clock=past_clock, runs_per_day=30)
              for i, name in enumerate(["acme", "globex"])}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    yield sim
    sim.stop()


def test_a_bad_line_is_reported_once_as_that_entry_and_no_account(accounts_sim, tmp_path,
                                                                   monkeypatch, capsys):
    sim = accounts_sim
    file = tmp_path / "accounts_bad.jsonl"
    good = [json.dumps({"name": name, "access_token": sim.accounts[name].token})
            for name in ("acme", "globex")]
    file.write_text("\n".join([*good, "", "{not json"]) + "\n")
    set_env(monkeypatch, base_url=sim.base_url, requests_per_minute=0, backoff_base=0.01)
    assert main(["--accounts-file", str(file)]) == 4
    out = capsys.readouterr().out
    where = f"{file} line 4"
    lines = [line for line in out.splitlines() if where in line]
    assert lines == [f"  BAD ENTRY  {where}: not a JSON object (one account per line)."], out
    rows = log_rows(tmp_path / "zap_runs.duckdb")
    assert sorted(r[0] for r in rows if r[0]) == ["acme", "globex"]
    assert [(r[0], r[1]) for r in rows if r[0] is None] == [(None, "invalid")]
    with duckdb.connect(str(tmp_path / "zap_runs.duckdb"), read_only=True) as con:
        marts = {r[0] for r in con.execute("select account_id from zapier.account_health").fetchall()}
    assert marts == {"acme", "globex"}
    # The entry fixed: the next pass is clean and status counts no failing account.
    file.write_text("\n".join(good) + "\n")
    assert main(["--accounts-file", str(file)]) == 0
    assert main(["status", "--accounts-file", str(file)]) == 0
    assert where not in capsys.readouterr().out


def test_accounts_file_option_is_checked_and_forget_names_where_it_is(accounts_sim, tmp_path,
                                                                      monkeypatch, capsys):
    sim = accounts_sim
    assert main(["--accounts-file", str(tmp_path / "nope.jsonl")]) == 2
    assert "--accounts-file" in capsys.readouterr().err
    file = tmp_path / "accounts.jsonl"
    file.write_text("\n".join(json.dumps({"name": n, "access_token": sim.accounts[n].token})
                              for n in ("acme", "globex")) + "\n")
    set_env(monkeypatch, base_url=sim.base_url, requests_per_minute=0, backoff_base=0.01)
    assert main(["--accounts-file", str(file)]) == 0
    # status knows the configured accounts: one taken out of the file is no longer synced at
    # once (not failing, not stale), whatever --max-age says.
    only_acme = tmp_path / "only_acme.jsonl"
    only_acme.write_text(file.read_text().splitlines()[0] + "\n")
    sim.revoke("globex")
    assert main(["--accounts-file", str(file)]) == 4
    capsys.readouterr()
    assert main(["status", "--accounts-file", str(only_acme)]) == 0
    out = capsys.readouterr().out
    assert "NOT SYNCED     globex" in out and "FAILING" not in out
    assert main(["status", "--accounts-file", str(file)]) == 4
    assert "FAILING        globex" in capsys.readouterr().out
    assert main(["report", "--accounts-file", str(file), "--output", str(tmp_path / "r.html")]) == 0
    assert "globex" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert main(["report", "--accounts-file", str(only_acme), "--output", str(tmp_path / "a.html")]) == 0
    assert "globex" not in (tmp_path / "a.html").read_text(encoding="utf-8")
    assert main(["forget", "--account", "globex", "--accounts-file", str(file)]) == 0
    out = capsys.readouterr().out
    assert f"'globex' is still configured ({file} line 2): remove it" in out
    assert {r[0] for r in log_rows(tmp_path / "zap_runs.duckdb")} == {"acme"}
    assert main(["forget", "--account", "acme", "--accounts-file", str(only_acme)]) == 0
    assert "still configured" in capsys.readouterr().out


def test_a_window_never_ends_before_it_starts(sim_env, capsys):
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["--since", later]) == 2
    assert "in the future" in capsys.readouterr().err


def test_a_failed_account_and_a_bad_entry_are_told_apart(accounts_sim, tmp_path, monkeypatch, capsys):
    sim = accounts_sim
    file = tmp_path / "accounts.jsonl"
    lines = [json.dumps({"name": "acme", "access_token": "revoked"}),
             json.dumps({"name": "globex", "access_token": sim.accounts["globex"].token}), "[1, 2"]
    file.write_text("\n".join(lines) + "\n")
    set_env(monkeypatch, base_url=sim.base_url, requests_per_minute=0, backoff_base=0.01)
    assert main(["--accounts-file", str(file)]) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    where = f"{file} line 3"
    assert err.startswith("error: 1 of 2 accounts failed or were skipped (acme); 1 bad entry in the "
                          f"accounts configuration ({where}: not a JSON object"), err
    assert err.count(where) == 1 and "the others are loaded" in err
    file.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert main(["--accounts-file", str(file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: every account failed (1): acme: ") and where not in err


def test_phantom_accounts_of_older_versions_become_bad_entries(sim_env, tmp_path, capsys):
    assert main([]) == 0
    db = tmp_path / "zap_runs.duckdb"
    with duckdb.connect(str(db)) as con:  # as an older version logged a bad line
        con.execute("insert into zapier.zap_runs_sync_log (sync_id, started_at, ended_at, result, "
                    "account_id, error) values ('old', now(), now(), 'failed', "
                    "'accounts_bad.jsonl line 4', 'not a JSON object')")
    assert main([]) == 0
    rows = log_rows(db)
    assert (None, "invalid", "accounts_bad.jsonl line 4: not a JSON object") in rows
    assert all(r[0] in ("default", None) for r in rows)
    with duckdb.connect(str(db), read_only=True) as con:
        marts = {r[0] for r in con.execute("select account_id from zapier.account_health").fetchall()}
    assert marts == {"default"}
    assert main(["status"]) == 0
    assert "accounts_bad" not in capsys.readouterr().out
