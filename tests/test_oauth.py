"""OAuth refresh with rotating refresh tokens, stored atomically; secrets never show anywhere."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.zap_runs.api.oauth import RefreshingToken
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.common.errors import AuthError, ConfigError, unwrap
from pipelines.zap_runs.warehouse.pipeline import sync

from .conftest import small_world
from .warehouse import FAST, assert_shown_nowhere, duckdb_pipeline


def oauth_args(sim, store, refresh):
    return {"base_url": sim.base_url, "refresh_token": refresh, "client_id": "sim-client",
            "client_secret": "sim-secret", "token_url": sim.base_url + "/oauth/token/",
            "token_store_path": str(store), **FAST}


def test_refresh_rotates_and_the_new_token_is_stored(make_simulator, tmp_path):
    sim = make_simulator(access_ttl=timedelta(hours=1))
    store = tmp_path / "secrets" / "tokens.json"
    first_refresh = sim.tokens.issue_refresh()
    result = sync(duckdb_pipeline(tmp_path / "o.duckdb"), **oauth_args(sim, store, first_refresh))
    assert result.runs_fetched > 0 and sim.tokens.refreshes == 1
    saved = json.loads(store.read_text())
    assert saved["refresh_token"] != first_refresh, "the rotated token replaced the used one"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    # The configured refresh token is dead now; the stored one carries the next sync.
    sync(duckdb_pipeline(tmp_path / "o.duckdb"), **oauth_args(sim, store, first_refresh))
    assert sim.tokens.refreshes == 1, "the stored access token was still fresh"


def test_refresh_once_on_401_and_before_expiry(make_simulator, past_clock, tmp_path):
    sim = make_simulator(small_world(clock=past_clock), access_ttl=timedelta(hours=1))
    store = tmp_path / "tokens.json"
    pipeline = duckdb_pipeline(tmp_path / "o.duckdb")
    sync(pipeline, **oauth_args(sim, store, sim.tokens.issue_refresh()))
    past_clock.advance(timedelta(hours=2))  # the server's clock: the access token is expired
    sync(pipeline, **oauth_args(sim, store, "unused"))
    assert sim.tokens.refreshes == 2
    assert [r["status"] for r in sim.zap_run_requests()].count(401) == 1

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    tokens = RefreshingToken(json.loads(store.read_text())["refresh_token"], "sim-client",
                             "sim-secret", sim.base_url + "/oauth/token/", tmp_path / "t2.json",
                             clock=lambda: now[0])
    first = tokens.current()
    now[0] += timedelta(minutes=58)
    assert tokens.current() == first
    now[0] += timedelta(minutes=1, seconds=30)  # within a minute of expiry: refreshed ahead
    assert tokens.current() != first


def test_interrupted_store_write_never_loses_the_refresh_token(tmp_path):
    store = tmp_path / "tokens.json"
    store.write_text(json.dumps({"refresh_token": "old", "access_token": None, "expires_at": None}))
    tmp = tmp_path / "tokens.json.tmp"
    tmp.write_text('{"refresh_token": "new", "access_tok')  # killed half way through the write
    tokens = RefreshingToken("configured", "c", "s", "http://127.0.0.1:9/", store)
    assert tokens._refresh == "old" and not tmp.exists()
    tmp.write_text(json.dumps({"refresh_token": "newer", "access_token": "a", "expires_at": None}))
    tokens = RefreshingToken("configured", "c", "s", "http://127.0.0.1:9/", store)  # killed before rename
    assert tokens._refresh == "newer" and json.loads(store.read_text())["refresh_token"] == "newer"
    store.write_text("{broken")
    with pytest.raises(ConfigError, match="delete it"):
        RefreshingToken("configured", "c", "s", "http://127.0.0.1:9/", store)


def test_refused_refresh_is_one_actionable_line(make_simulator, tmp_path):
    sim = make_simulator()
    with pytest.raises(Exception) as raised:
        sync(duckdb_pipeline(tmp_path / "o.duckdb"),
             **oauth_args(sim, tmp_path / "t.json", "sim-rt-never-issued"))
    error = unwrap(raised.value)
    assert isinstance(error, AuthError) and "authorise again" in str(error)
    assert error.exit_code == 2
    assert "sim-rt-never-issued" not in str(error) and "sim-secret" not in str(error)


def test_secrets_never_show(make_simulator, tmp_path, monkeypatch, capsys):
    sim = make_simulator(access_ttl=timedelta(hours=1))
    refresh = sim.tokens.issue_refresh()
    store = tmp_path / "tokens.json"
    db = tmp_path / "s.duckdb"
    for name, value in {"SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
                        "SOURCES__ZAP_RUNS__REFRESH_TOKEN": refresh,
                        "SOURCES__ZAP_RUNS__CLIENT_ID": "sim-client",
                        "SOURCES__ZAP_RUNS__CLIENT_SECRET": "sim-secret",
                        "SOURCES__ZAP_RUNS__TOKEN_URL": sim.base_url + "/oauth/token/",
                        "SOURCES__ZAP_RUNS__TOKEN_STORE_PATH": str(store),
                        "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0",
                        "DESTINATION__DUCKDB__CREDENTIALS": str(db)}.items():
        monkeypatch.setenv(name, value)
    assert main(["--log-level", "DEBUG"]) == 0
    sim.faults.error_rate = 1.0
    monkeypatch.setenv("SOURCES__ZAP_RUNS__MAX_RETRIES", "1")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BACKOFF_BASE", "0.01")
    assert main(["--log-level", "DEBUG"]) == 1
    assert main(["status"]) == 0
    captured = capsys.readouterr()
    saved = json.loads(store.read_text())
    secrets = {refresh, saved["refresh_token"], saved["access_token"], "sim-secret"}
    assert_shown_nowhere(secrets, {"stdout": captured.out, "stderr": captured.err}, db,
                         tmp_path / "dlt-data")
