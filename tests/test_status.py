"""`status`: the last pass added up (accounts, bad entries, runs, requests), the last success, the
accounts that need attention; --account NAME, --json; exit codes 0, 1 (stale), 2, 4."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from pipelines.simulator import Simulator
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.warehouse import synclog
from pipelines.zap_runs.warehouse.synclog import Outcome

from .conftest import small_world
from .warehouse import duckdb_pipeline, set_env

BAD_LINE = "accounts.jsonl line 4: not a JSON object (one account per line)"
FORGET = "`forget --account gone` deletes its data"
REFUSED = "the Zapier API refused the token (401, revoked or expired): update accounts.jsonl line 2"


def masked(text: str) -> str:
    """Times and how long ago they were, as <time> and <ago>."""
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)
    return re.sub(r"\(\d+\.\d (h|days) ago\)", "(<ago>)", text)


class Log:
    """A sync log written row by row as the sync writes it (synclog.record), with a run."""

    def __init__(self, db) -> None:
        self.pipeline = duckdb_pipeline(db)
        self.now = datetime.now(UTC)
        self.db = db

    def add(self, sync_id: str, minutes_ago: float, rows: list[tuple]) -> None:
        """rows: (account or None, result, seconds it took, column values)"""
        started = self.now - timedelta(minutes=minutes_ago)
        outcomes = []
        for account, result, seconds, values in rows:
            outcomes.append(Outcome(sync_id, started, started + timedelta(seconds=seconds), result,
                                    account_id=account, **values))
            started += timedelta(seconds=seconds)
        synclog.record(self.pipeline, outcomes)
        with duckdb.connect(str(self.db)) as con:
            con.execute("create table if not exists zapier.zap_runs "
                        "(account_id varchar, id varchar, start_time timestamptz)")
            con.execute("insert into zapier.zap_runs values ('acme', ?, ?)",
                        [sync_id, started - timedelta(minutes=20)])


def read(rows: dict, window: bool = False) -> dict:
    values = {"runs_fetched": rows.get("runs"), "requests": rows.get("requests", 0),
              "retries": 0, "rate_limited": 0, "open_runs": rows.get("open"),
              "budget": rows.get("budget"), "error": rows.get("error")}
    if window:
        values["window_from"] = datetime(2026, 11, 29, 11, 45, tzinfo=UTC)
        values["window_to"] = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    return values


@pytest.fixture
def many(tmp_path, monkeypatch) -> Log:
    """Six accounts: one no sync has read for 30 h, then a pass 7 h ago where the others
    synced, globex again 2 h ago, then the last pass: 2 synced, 1 failed (globex), 1 skipped
    (initech), 1 deferred (hooli), and a bad entry."""
    log = Log(tmp_path / "s.duckdb")
    set_env(monkeypatch, log.db)
    log.add("p0", 30 * 60, [("gone", "success", 1, read({"runs": 5, "requests": 1}))])
    log.add("p1", 7 * 60, [(name, "success", 1, read({"runs": 9, "requests": 2}))
                           for name in ("acme", "globex", "hooli", "initech", "umbrella")])
    log.add("p1b", 2 * 60, [("globex", "success", 1, read({"runs": 3, "requests": 1}))])
    log.add("p2", 5, [
        (None, "invalid", 0, read({"error": BAD_LINE, "requests": None})),
        ("acme", "success", 2, read({"runs": 12, "requests": 1, "open": 2, "budget": 1}, window=True)),
        ("globex", "failed", 1, read({"requests": 1, "error": REFUSED})),
        ("initech", "skipped", 0.5, read({"error": "refused since yesterday"})),
        ("hooli", "deferred", 0.5, read({"error": "waits for the next pass"})),
        ("umbrella", "success", 4, read({"runs": 30, "requests": 3, "open": 1, "budget": 2},
                                        window=True)),
    ])
    return log


def test_the_last_pass_added_up_then_the_accounts_that_need_attention(many, capsys):
    assert main(["status"]) == 4
    assert masked(capsys.readouterr().out) == f"""\
zap-runs status (duckdb dataset 'zapier')
  last sync      <time> (<ago>): 5 accounts read in 8.0 s
  accounts       2 synced, 1 failed, 1 skipped, 1 deferred; 1 bad entry in the configuration, not read (below)
  window         <time> -> <time>
  runs           42 fetched; 3 still open
  requests       5 (0 retries, 0 rate limited)
  needed         about 3 requests to read what changed
  last success   <time> (<ago>)
  newest run     <time> (<ago>)
  health         6 accounts: 2 ok, 2 failing, 1 stale, 1 no longer synced
  FAILING        globex: failed <time> (<ago>) ({REFUSED}); last success <time> (<ago>)
  FAILING        initech: skipped <time> (<ago>) (refused since yesterday); last success <time> (<ago>)
  STALE          hooli: last success <time> (<ago>)
  NOT SYNCED     gone: last read <time> (<ago>); removed from the configuration? {FORGET}
  BAD ENTRY      {BAD_LINE}
OK: the last successful sync is within 6 h
SOME ACCOUNTS FAILING OR STALE, AND BAD ENTRIES IN THE ACCOUNTS CONFIGURATION (exit 4)
"""


def test_a_bad_entry_counts_in_the_last_pass_only(many, capsys):
    many.add("p3", 1, [(name, "success", 1, read({"runs": 1, "requests": 1, "budget": 1}))
                       for name in ("acme", "globex", "hooli", "initech", "umbrella")])
    assert main(["status"]) == 0, "the entry was fixed: nothing needs attention"
    out = capsys.readouterr().out
    assert "BAD" not in out and "bad entr" not in out and "accounts.jsonl" not in out
    assert "  accounts       5 synced, 0 failed, 0 skipped, 0 deferred\n" in out
    many.add("p4", 0.5, [(None, "invalid", 0, read({"error": BAD_LINE, "requests": None})),
                         *[(name, "success", 1, read({"runs": 1, "requests": 1}))
                           for name in ("acme", "globex", "hooli", "initech", "umbrella")]])
    assert main(["status"]) == 4, "a bad entry alone needs attention too"
    out = capsys.readouterr().out
    assert out.rstrip().endswith("OK: the last successful sync is within 6 h\n"
                                 "BAD ENTRIES IN THE ACCOUNTS CONFIGURATION (exit 4)")
    assert f"  BAD ENTRY      {BAD_LINE}\n" in out and "FAILING" not in out


def test_one_account_with_its_own_verdict_and_exit_code(many, capsys):
    assert main(["status", "--account", "acme"]) == 0
    assert masked(capsys.readouterr().out) == """\
zap-runs status of account 'acme' (duckdb dataset 'zapier')
  last sync      <time> (<ago>): success in 2.0 s
  window         <time> -> <time>
  runs           12 fetched; 2 still open
  requests       1 (0 retries, 0 rate limited)
  needed         about 1 request to read what changed
  last success   <time> (<ago>)
  newest run     <time> (<ago>)
OK: the last successful sync of account 'acme' is within 6 h
"""
    assert main(["status", "--account", "globex"]) == 4
    out = capsys.readouterr().out
    assert f"): failed after 1.0 s ({REFUSED})\n" in out
    assert out.endswith("FAILING: account 'globex': its last sync failed (exit 4)\n")
    assert main(["status", "--account", "initech"]) == 1, "stale, whatever else"
    assert capsys.readouterr().out.endswith("STALE: no successful sync of account 'initech' in the "
                                            "last 6 h, and the last sync skipped it\n")
    assert main(["status", "--account", "hooli"]) == 1
    out = capsys.readouterr().out
    assert "): deferred (waits for the next pass)\n" in out
    assert out.endswith("STALE: no successful sync of account 'hooli' in the last 6 h\n")
    assert main(["status", "--account", "gone"]) == 1
    assert "NOT SYNCED: no sync has read account 'gone' for 6 h" in capsys.readouterr().out
    assert main(["status", "--account", "acme", "--max-age", "0.01"]) == 1


def test_an_unknown_account_exits_2_with_the_names_there_are(many, capsys):
    assert main(["status", "--account", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: no account 'nope' in the sync log of duckdb dataset 'zapier'; "
                            "its accounts: acme, globex, gone, hooli, initech, umbrella.\n")


def test_json_for_monitors_holds_the_same_facts_and_exit_code(many, capsys):
    assert main(["status", "--json"]) == 4
    status = json.loads(capsys.readouterr().out)
    assert (status["verdict"], status["exit_code"], status["account"]) == ("attention", 4, None)
    last = status["last_pass"]
    assert last["accounts"] == {"synced": 2, "failed": 1, "skipped": 1, "deferred": 1}
    assert (last["bad_entries"], last["runs_fetched"], last["requests"]) == (1, 42, 5)
    assert last["runs_new"] is None, "not known for a pass over many accounts"
    assert status["bad_entries"] == [BAD_LINE]
    assert [(a["account"], a["reason"]) for a in status["attention"]] == [
        ("globex", "failing"), ("initech", "failing"), ("hooli", "stale"),
        ("gone", "no longer synced")]
    for when in (last["started_at"], status["last_success_at"], status["newest_run_at"],
                 status["attention"][0]["last_sync_at"]):
        assert datetime.fromisoformat(when).tzinfo is not None
    assert main(["status", "--json", "--max-age", "0.01"]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "stale"
    assert main(["status", "--json", "--account", "globex"]) == 4
    one = json.loads(capsys.readouterr().out)
    assert (one["account"], one["last_pass"]["result"], one["attention"][0]["reason"]) == (
        "globex", "failed", "failing")
    assert main(["--json"]) == 2
    assert capsys.readouterr().err == "error: --json is for `status` (one JSON object for monitors).\n"


def test_a_failed_single_account_sync_and_the_success_before_it(tmp_path, monkeypatch, capsys):
    log = Log(tmp_path / "one.duckdb")
    set_env(monkeypatch, log.db)
    log.add("s1", 60, [("default", "success", 3, {**read({"runs": 250, "requests": 37, "open": 40,
                                                          "budget": 18}, window=True),
                                                   "runs_new": 12, "runs_updated": 238})])
    assert main(["status"]) == 0
    assert "  runs           250 fetched: 12 new, 238 updated; 40 still open\n" in \
        capsys.readouterr().out
    log.add("s2", 1, [("default", "failed", 2, {"error": "Zapier API gave up after 5 retries"})])
    assert main(["status"]) == 0, "the last success is within 6 h"
    assert masked(capsys.readouterr().out) == """\
zap-runs status (duckdb dataset 'zapier')
  last sync      <time> (<ago>): failed after 2.0 s (Zapier API gave up after 5 retries)
  last success   <time> (<ago>)
  window         <time> -> <time>
  newest run     <time> (<ago>)
OK: the last successful sync is within 6 h
"""


def test_status_after_real_passes_over_many_accounts(past_clock, tmp_path, monkeypatch, capsys):
    worlds = {name: small_world(seed=140 + i, days=1, clock=past_clock, runs_per_day=30)
              for i, name in enumerate(["acme", "globex", "initech"])}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    try:
        file = tmp_path / "accounts.jsonl"
        lines = [json.dumps({"name": n, "access_token": sim.accounts[n].token}) for n in worlds]
        file.write_text("\n".join([*lines, "[1, 2]"]) + "\n")
        db = tmp_path / "p.duckdb"
        set_env(monkeypatch, db, base_url=sim.base_url, accounts_file=file,
                requests_per_minute=0, backoff_base=0.01)
        main([])
        assert main(["status"]) == 4
        out = capsys.readouterr().out
        with duckdb.connect(str(db), read_only=True) as con:
            requests, runs = con.execute("select sum(requests), sum(runs_fetched) from "
                                         "zapier.zap_runs_sync_log where account_id is not null"
                                         ).fetchone()
        assert "  accounts       3 synced, 0 failed, 0 skipped, 0 deferred; 1 bad entry " in out
        assert f"  runs           {runs:,} fetched; " in out
        assert f"  requests       {requests:,} (0 retries, 0 rate limited)\n" in out
        assert f"  BAD ENTRY      {file} line 4" in out and "FAILING" not in out
        assert "None" not in out
        file.write_text("\n".join(lines) + "\n")
        assert main([]) == 0
        assert main(["status"]) == 0
        assert "BAD ENTRY" not in capsys.readouterr().out
    finally:
        sim.stop()


def test_a_first_sync_that_failed_before_any_run_was_loaded(tmp_path, monkeypatch, capsys):
    db = tmp_path / "first.duckdb"
    set_env(monkeypatch, db)
    started = datetime.now(UTC) - timedelta(minutes=3)
    synclog.record(duckdb_pipeline(db), Outcome("f1", started, started + timedelta(seconds=2),
                                                "failed", account_id="default",
                                                error="Cannot reach the Zapier API"))
    assert main(["status"]) == 1
    assert masked(capsys.readouterr().out) == """\
zap-runs status (duckdb dataset 'zapier')
  last sync      <time> (<ago>): failed after 2.0 s (Cannot reach the Zapier API)
  last success   never
  newest run     never
STALE: no successful sync in the last 6 h
"""
