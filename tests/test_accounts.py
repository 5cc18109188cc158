"""Accounts from secrets.toml tables, a JSON Lines file and the Python argument: merged in
order, bad entries reported by name and line without their secrets, shards stable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.zap_runs.accounts.entries import Account, collect, parse_shard, shard_of
from pipelines.zap_runs.common.errors import ConfigError

SHARED = {"client_id": "app-id", "client_secret": "app-secret-123"}


def test_accounts_come_from_tables_a_file_and_the_argument_in_that_order(tmp_path):
    file = tmp_path / "accounts.jsonl"
    file.write_text(json.dumps({"name": "from-file", "access_token": "tok-file"}) + "\n\n"
                    + json.dumps({"name": "rt-user", "refresh_token": "rt-1"}) + "\n")
    found = collect({"acme": {"access_token": "tok-acme"}}, str(file),
                    [Account("embedded", access_token="tok-emb"), {"name": "d", "access_token": "t"}],
                    SHARED)
    assert [a.name for a in found.accounts] == ["acme", "from-file", "rt-user", "embedded", "d"]
    assert found.problems == []
    refreshing = found.accounts[2]
    # The app's shared client credentials apply to an entry that has none.
    assert (refreshing.client_id, refreshing.client_secret) == ("app-id", "app-secret-123")


def test_bad_entries_are_reported_by_name_and_line_and_never_show_their_secrets(tmp_path):
    file = tmp_path / "accounts.jsonl"
    file.write_text("\n".join([
        json.dumps({"name": "ok-1", "access_token": "tok-ok"}),
        '{"name": "broken", "access_token": "sk-LEAKED-1"',  # not JSON
        json.dumps({"name": "no-token"}),
        json.dumps({"name": "bad name!", "access_token": "sk-LEAKED-2"}),
        json.dumps({"name": "odd", "access_token": "sk-LEAKED-3", "passwd": "sk-LEAKED-4"}),
        json.dumps({"name": "ok-1", "access_token": "sk-LEAKED-5"}),
        json.dumps({"name": "ok-2", "access_token": "tok-ok-2"}),
    ]) + "\n")
    found = collect(None, str(file), None, {})
    assert [a.name for a in found.accounts] == ["ok-1", "ok-2"]
    by_name = dict(found.problems)
    assert set(by_name) == {f"{file} line 2", "no-token", f"{file} line 4", "odd", "ok-1"}
    assert "line 3" in by_name["no-token"] and "access_token" in by_name["no-token"]
    assert "unknown field 'passwd'" in by_name["odd"]
    assert "configured twice" in by_name["ok-1"]
    text = " ".join(message for _, message in found.problems)
    assert "LEAKED" not in text


def test_a_refresh_token_without_client_credentials_is_a_bad_entry_not_a_crash():
    found = collect({"x": {"refresh_token": "rt-secret-9"}}, None, None, {})
    assert found.accounts == [] and found.problems[0][0] == "x"
    assert "client_id" in found.problems[0][1] and "rt-secret-9" not in found.problems[0][1]


def test_account_repr_and_fingerprint_never_show_the_token():
    account = Account("a", access_token="sk-very-secret-token")
    assert "sk-very-secret" not in repr(account)
    assert "sk-very-secret" not in account.fingerprint()
    assert account.fingerprint() != Account("a", access_token="sk-other").fingerprint()


def test_an_unreadable_accounts_file_is_one_line():
    with pytest.raises(ConfigError, match="cannot read accounts_file /nonexistent/a.jsonl"):
        collect(None, "/nonexistent/a.jsonl", None, {})


def test_shards_are_stable_across_processes_and_split_accounts_evenly():
    names = [f"acct-{i:04d}" for i in range(1000)]
    here = [shard_of(name, 4) for name in names]
    # Another interpreter (another hash seed) puts every account in the same shard.
    code = ("from pipelines.zap_runs.accounts.entries import shard_of; "
            "print([shard_of(f'acct-{i:04d}', 4) for i in range(1000)])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123"}).stdout
    assert json.loads(there) == here
    sizes = [here.count(i) for i in range(4)]
    assert min(sizes) > 200, sizes


@pytest.mark.parametrize("text", ["4/4", "-1/3", "1", "a/b", "0/0", ""])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_a_good_shard_parses():
    assert parse_shard(" 2 / 5 ") == (2, 5)
