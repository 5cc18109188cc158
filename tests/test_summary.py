"""The sync's summary in plain words: runs new and updated, requests, the minutes of the rate
limit they took, and what reading what changed needs; the split by purpose only with --verbose."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb

from pipelines.zap_runs.accounts.outcomes import AccountOutcome
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.output.summary import format_summary
from pipelines.zap_runs.reading.spend import Budget, Spend
from pipelines.zap_runs.warehouse.pipeline import SyncResult

START = datetime(2026, 11, 29, 11, 45, tzinfo=UTC)
END = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
JARGON = ("spent on", "budget B", "ratio", "apart", "None")


def result(**changes) -> SyncResult:
    """A sync that read 250 runs (12 new) in 37 requests; B is 18 (what changed)."""
    spend = Spend(by_purpose={"new": 1, "open": 1, "errors": 1, "rechecks": 6, "lookback": 1,
                              "unlisted": 24, "late": 2}, retries=1,
                  budget=Budget(new=12, open=40, recent_errors=30, changed=15))
    values = dict(destination="duckdb", dataset="zapier", window_from=START, window_to=END,
                  runs_fetched=250, runs_new=12, runs_updated=238, steps_loaded=1_040,
                  open_runs=40, rechecks=6, requests=37, retries=1, rate_limited=0,
                  elapsed=41.25, fetching=38.5, spend=spend)
    return SyncResult(**{**values, **changes})


def test_one_account_in_plain_words():
    assert format_summary(result(), 60) == """\
zap-runs sync into duckdb dataset 'zapier': OK
  window     2026-11-29 11:45:00 UTC -> 2026-11-29 12:00:00 UTC
  runs       250 fetched: 12 new, 238 updated
  steps      1,040 rows loaded
  open runs  40 still open
  requests   37 (1 retries, 0 rate limited)
  rate limit 0.6 min used, at 60 requests a minute
  needed     about 18 requests to read what changed, plus 27 to stay exact (lookback, late and unlisted runs)
  elapsed    41.2 s (38.5 s fetching)"""


def test_verbose_adds_the_split_by_purpose_the_budget_and_the_ratio():
    text = format_summary(result(), 60, verbose=True)
    assert text.splitlines()[4:11] == [
        "  open runs  40 still open, 6 re-check windows",
        "  requests   37 (1 retries, 0 rate limited)",
        "  rate limit 0.6 min used, at 60 requests a minute",
        "  needed     about 18 requests to read what changed, plus 27 to stay exact (lookback, late "
        "and unlisted runs)",
        "  spent on   1 new runs, 1 open listing, 1 error listing, 6 re-checks of changed runs",
        "  apart      1 lookback, 24 unlisted-status checks, 2 late failures, 1 retries",
        "  budget     B 18 (what changed), ratio 0.50 (1.94 with unlisted-status checks and late "
        "failures)",
    ]


def test_unpaced_shard_and_nothing_changed_are_said_plainly():
    nothing = Spend(budget=Budget())
    unpaced = format_summary(result(spend=nothing, requests=3), 0).splitlines()
    assert unpaced[6:8] == [
        "  rate limit not paced (requests_per_minute is 0): 3.0 s at Zapier's 60 a minute",
        "  needed     1 request, to see that nothing had changed"]
    shard = format_summary(result(runs_new=None, runs_updated=None, requests=900), 30, share=2)
    assert "  runs       250 fetched\n" in shard, "a shard cannot tell new from updated: not said"
    assert ("  rate limit 30.0 min used, at 30 requests a minute (this shard's 1/2 of "
            "requests_per_minute)") in shard
    assert not any(word in shard for word in JARGON)


def test_many_accounts_and_bad_entries_of_the_configuration():
    def outcome(name, state, error=None):
        return AccountOutcome(name, state, START, END, error)

    accounts = [outcome("acme", "success"), outcome("globex", "failed", "401: update its token"),
                outcome("initech", "skipped", "refused since yesterday"),
                outcome("hooli", "deferred", "waits for the next pass"),
                outcome("accounts.jsonl line 4", "invalid",
                        "accounts.jsonl line 4: not a JSON object (one account per line)")]
    lines = format_summary(result(accounts=accounts), 60).splitlines()
    assert lines[:5] == [
        "zap-runs sync into duckdb dataset 'zapier': SOME ACCOUNTS FAILED",
        "  accounts   4: 1 synced, 1 failed, 1 skipped, 1 backfills wait for the next pass; "
        "1 bad entry in the configuration, not read",
        "  FAILED     globex: 401: update its token",
        "  SKIPPED    initech: refused since yesterday",
        "  BAD ENTRY  accounts.jsonl line 4: not a JSON object (one account per line)"]
    fine = [outcome("acme", "success"), accounts[-1]]
    assert format_summary(result(accounts=fine), 60).splitlines()[0] == (
        "zap-runs sync into duckdb dataset 'zapier': OK, BUT 1 BAD ENTRY IN THE ACCOUNTS "
        "CONFIGURATION")
    assert format_summary(result(accounts=[accounts[-1]]), 60).splitlines()[0].endswith(
        ": NO ACCOUNT TO SYNC: EVERY ENTRY IS BAD")
    assert format_summary(result(accounts=accounts[1:3]), 60).splitlines()[0].endswith(
        ": ALL ACCOUNTS FAILED")


# The summary of a real sync, what varies from run to run masked.
SHAPE = """\
zap-runs sync into duckdb dataset 'zapier': OK
  file       <the file written>
  window     API default (last N days) -> <time>
  runs       N fetched: N new, N updated
  steps      N rows loaded
  open runs  N still open
  requests   N (N retries, N rate limited)
  rate limit N s used, at N requests a minute
  needed     about N requests to read what changed
  elapsed    N s (N s fetching)
  models     N rebuilt in N s"""


def masked(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)
    return re.sub(r"\d[\d,.]*", "N", text)


def figure(text: str, pattern: str) -> str:
    return re.search(pattern, text, re.M).group(1)


def test_a_real_syncs_summary_and_its_verbose_split(sim_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE", "6000")
    assert main([]) == 0
    out = capsys.readouterr().out
    written = tmp_path.resolve() / "zap_runs.duckdb"
    assert written.exists()  # the DuckDB path printed is the one written
    assert masked(out.replace(str(written), "<the file written>").strip()) == SHAPE
    requests = int(figure(out, r"^  requests   (\d+) "))
    assert figure(out, r"^  rate limit ([\d.]+) s used, at 6000 ") == f"{requests / 100:.1f}"
    with duckdb.connect(str(tmp_path / "zap_runs.duckdb"), read_only=True) as con:
        budget, = con.execute("select budget from zapier.zap_runs_sync_log").fetchone()
    assert figure(out, r"^  needed     about (\d+) requests") == str(budget)
    assert main(["--verbose"]) == 0
    verbose = capsys.readouterr().out
    split = figure(verbose, r"^  spent on   (.*)$") + ", " + figure(verbose, r"^  apart      (.*)$")
    spent = sum(int(n) for n in re.findall(r"(\d+) ", split))
    assert spent == int(figure(verbose, r"^  requests   (\d+) "))
    assert re.search(r"^  budget     B \d+ \(what changed\), ratio (\d\.\d\d|n/a \(B is 0\))",
                     verbose, re.M)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE", "0")
    assert main([]) == 0
    assert re.search(r"^  rate limit not paced \(requests_per_minute is 0\): [\d.]+ (s|min) at Zapier's "
                     r"60 a minute$", capsys.readouterr().out, re.M)
