"""Incident alerts against real local receivers (HTTP, SMTP): signed, keyed, delivered once when
nothing fails and at least once when something does, routed per account, secrets never shown."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.simulator import Episode, ManualClock, World, WorldConfig
from pipelines.simulator.lifecycle import iso
from pipelines.zap_runs.accounts.entries import collect
from pipelines.zap_runs.alerts import delivery as alerts
from pipelines.zap_runs.alerts.channels import Channel, parse_channel
from pipelines.zap_runs.alerts.delivery import deliver, failing_channels
from pipelines.zap_runs.alerts.messages import SIGNATURE_HEADER, sample, transition_key
from pipelines.zap_runs.alerts.sending import send
from pipelines.zap_runs.cli.alert_hooks import incidents_and_alerts
from pipelines.zap_runs.cli.loop import Stop, run_loop
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.common.errors import ConfigError
from pipelines.zap_runs.common.sync_config import sync_config
from pipelines.zap_runs.warehouse.models import build_models

from .alert_receivers import start_http, start_smtp
from .test_models import ACCOUNT, keyed
from .test_partners import entries, serve
from .warehouse import assert_shown_nowhere, drop_datasets, pipeline_for, run_sync, set_env

START = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)
SECRET = "whsec-4f9c2e7d1b"


def episode_world(clock: ManualClock, seed: int = 11) -> tuple[World, list[int]]:
    """Four zaps over three days: the busiest fails from START-30h for 5 hours, the second from
    START-8h for two days; no replays, so each episode is one incident."""
    config = WorldConfig(seed=seed, zaps=4, runs_per_day=600, history_days=3, replay_share=0.0,
                         streaks_per_week=0.0)
    probe = World(config, ManualClock(START))
    busiest = sorted(range(len(probe.zaps)), key=lambda i: -probe.zaps[i].runs_per_hour)[:2]
    world = World(replace(config, episodes=(Episode(busiest[0], START - timedelta(hours=30), 5),
                                            Episode(busiest[1], START - timedelta(hours=8), 48))),
                  clock)
    return world, [world.zaps[i].id for i in busiest]


@pytest.fixture
def http():
    receiver = start_http()
    yield receiver
    receiver.server.shutdown()


def webhook(http, path: str = "/hook", name: str = "hook", **extra) -> Channel:
    return parse_channel(name, {"kind": "webhook", "url": http.url(path), "secret": SECRET, **extra},
                         "test")


def assert_signed(received) -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers[SIGNATURE_HEADER] == expected
    assert received.headers["Idempotency-Key"] == received.json["idempotency_key"]


def incidents_of(pipeline, zap_id: int) -> list[dict]:
    return sorted((r for r in keyed(pipeline, "zap_incidents").values() if r["zap_id"] == zap_id),
                  key=lambda r: r["opened_at"])


@pytest.mark.parametrize("destination", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_opened_then_resolved_each_once_signed_with_stable_keys(destination, make_simulator,
                                                                http, tmp_path, request):
    clock = ManualClock(START - timedelta(hours=27))  # the first episode is under way
    world, (first_zap, second_zap) = episode_world(clock)
    sim = make_simulator(world)
    smtp, mailbox = start_smtp()
    email = parse_channel("mail", {"kind": "email", "smtp_host": "127.0.0.1",
                                   "smtp_port": smtp.port, "starttls": False,
                                   "from_addr": "zap-runs@example.com", "to": "oncall@example.com"},
                          "test")
    slack = parse_channel("slack", {"kind": "slack", "url": http.url("/slack")}, "test")
    channels = [webhook(http), slack, email]
    pipeline = pipeline_for(destination, tmp_path, request, "alerts")
    try:
        run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
        build_models(pipeline)
        first = deliver(pipeline, channels)
        (opened,) = [i for i in incidents_of(pipeline, first_zap) if i["is_open"]]
        opened_key = transition_key(ACCOUNT, first_zap, opened["first_failed_run_id"], "opened")
        assert http.taken("/hook") == [opened_key], "the open incident, once"
        assert first.sent == 3 and not first.failing
        assert deliver(pipeline, channels).sent == 0, "nothing changed: nothing sent again"

        clock.advance(timedelta(hours=27))  # it resolved; the second episode opened
        run_sync(sim, pipeline)
        build_models(pipeline)
        second = deliver(pipeline, channels)
        (now_open,) = [i for i in incidents_of(pipeline, second_zap) if i["is_open"]]
        keys = http.taken("/hook")
        assert keys[0] == opened_key and set(keys[1:]) == {
            transition_key(ACCOUNT, second_zap, now_open["first_failed_run_id"], "opened"),
            transition_key(ACCOUNT, first_zap, opened["first_failed_run_id"], "resolved")}
        assert len(set(keys)) == len(keys) == 3 and second.sent == 6
        for received in http.ok("/hook"):
            assert_signed(received)
        bodies = {t["event"]: t for r in http.ok("/hook") for t in r.json["transitions"]}
        assert bodies["resolved"]["resolved_at"] and bodies["opened"]["failed_runs"] >= 3
        assert bodies["opened"]["first_failed_step"] >= 1
        texts = [r.json["text"] for r in http.ok("/slack")]
        assert len(texts) == 3 and "is failing" in texts[0] and "recovered" in " ".join(texts)
        assert [m["Message-ID"] for m in mailbox.messages] == [f"<{k}@zap-runs>" for k in keys]
        assert mailbox.messages[0]["X-Rcpt"] == "oncall@example.com"
        assert "failing" in mailbox.messages[0]["Subject"]
    finally:
        smtp.stop()
        if destination == "postgres":
            drop_datasets(pipeline)


def test_a_failing_receiver_backs_off_across_syncs_then_gets_each_transition(make_simulator,
                                                                             http, tmp_path, request):
    clock = ManualClock(START)
    world, _ = episode_world(clock)
    sim = make_simulator(world)
    pipeline = pipeline_for("duckdb", tmp_path, request, "retry")
    run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
    build_models(pipeline)
    channel = webhook(http)
    http.fail["/hook"] = [503, 503]
    now = datetime.now(UTC)
    down = deliver(pipeline, [channel], now=now)
    (failing,) = down.failing
    assert failing.error == "HTTP 503 Service Unavailable" and failing.waiting >= 1
    assert failing.next_attempt_at == now + timedelta(minutes=1)
    assert [c["channel"] for c in failing_channels(pipeline)] == ["hook"]
    assert deliver(pipeline, [channel], now=now + timedelta(seconds=30)).failing, "backing off"
    assert len(http.received) == 1, "no request while backing off"
    again = deliver(pipeline, [channel], now=now + timedelta(minutes=1))
    assert again.failing[0].next_attempt_at == now + timedelta(minutes=3), "the wait doubles"
    assert len(http.received) == 2
    up = deliver(pipeline, [channel], now=now + timedelta(minutes=3))
    assert not up.failing and up.sent == failing.waiting
    assert sorted(http.taken()) == sorted(set(http.taken())), "each transition taken once"
    assert {r.json["idempotency_key"] for r in http.received[:2]} <= \
        {r.headers["Idempotency-Key"] for r in http.ok()}, "a retry keeps its key"
    assert failing_channels(pipeline) == []


def test_a_sigkill_between_send_and_record_resends_once_with_the_same_key(make_simulator, http,
                                                                         tmp_path, request):
    clock = ManualClock(START)
    world, _ = episode_world(clock)
    sim = make_simulator(world)
    db = tmp_path / "kill.duckdb"
    pipeline = pipeline_for("duckdb", tmp_path, request, "kill")
    run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
    build_models(pipeline)
    child: dict = {}
    started = threading.Event()

    def kill_the_sender(received) -> None:
        if len(http.received) == 1:
            started.wait(30)
            child["process"].send_signal(signal.SIGKILL)
            child["process"].wait(30)

    http.on_request = kill_the_sender
    script = ("import sys\nfrom pipelines.zap_runs.alerts.channels import Channel\n"
              "from pipelines.zap_runs.alerts.delivery import deliver\n"
              "from pipelines.zap_runs.warehouse.pipeline import make_pipeline\n"
              "pipeline = make_pipeline('duckdb', 'zapier', pipeline_name='zap_runs', "
              "credentials=sys.argv[1])\n"
              "deliver(pipeline, [Channel('hook', 'webhook', "
              "{'url': sys.argv[2], 'secret': sys.argv[3]})])\n")
    child["process"] = subprocess.Popen([sys.executable, "-c", script, str(db), http.url("/hook"),
                                         SECRET], cwd=tmp_path, env=os.environ.copy())
    started.set()
    assert child["process"].wait(60) == -signal.SIGKILL
    http.on_request = None
    killed = http.received[0].json["idempotency_key"]
    after = deliver(pipeline, [webhook(http)])
    keys = [r.json["idempotency_key"] for r in http.received]
    assert keys.count(killed) == 2, "sent once before the kill, once after"
    assert len(keys) == len(set(keys)) + 1 and after.sent == len(set(keys))
    assert deliver(pipeline, [webhook(http)]).sent == 0


def test_each_account_gets_its_own_incidents_and_the_partner_a_digest_of_all(
        http, tmp_path, monkeypatch, capsys):
    clock = ManualClock(START)
    worlds = {"acme": episode_world(clock, seed=11)[0], "globex": episode_world(clock, seed=12)[0]}
    sim = serve(worlds, clock)
    try:
        file = tmp_path / "accounts.jsonl"
        lines = [{**entry, "alerts": {"kind": "webhook", "url": http.url(f"/{entry['name']}"),
                                      "secret": SECRET}} for entry in entries(sim)]
        file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        partner = {"partner": {"kind": "webhook", "url": http.url("/partner/t0ken-path-x9"),
                               "secret": SECRET, "digest": True},
                   "dead": {"kind": "slack", "url": "http://127.0.0.1:9/never-listens-s3cr3t"}}
        set_env(monkeypatch, tmp_path / "p.duckdb", base_url=sim.base_url, accounts_file=file,
                requests_per_minute=0, backoff_base=0.01, since=iso(START - timedelta(days=4)),
                alerts=json.dumps(partner))
        assert main(["--all-accounts"]) == 0, "a dead channel does not fail the sync"
        out = capsys.readouterr()
        assert "channel dead FAILING since" in out.out
        for name in ("acme", "globex"):
            got = [t for r in http.ok(f"/{name}") for t in r.json["transitions"]]
            assert got and {t["account_id"] for t in got} == {name}
        (digest,) = http.ok("/partner/t0ken-path-x9")
        assert_signed(digest)
        assert sorted(t["idempotency_key"] for t in digest.json["transitions"]) == \
            sorted(http.taken("/acme") + http.taken("/globex"))
        assert main(["status"]) == 4, "alerts that cannot be delivered need attention"
        status = capsys.readouterr().out
        assert "  ALERTS FAILING dead: 4 waiting since" in status
        assert "ALERTS NOT DELIVERED (exit 4)" in status
        secrets = {SECRET, "t0ken-path-x9", "never-listens-s3cr3t"} | {
            e["access_token"] for e in entries(sim)}
        assert main(["alerts", "test"]) == 1, "the dead channel fails its test"
        tested = capsys.readouterr()
        assert tested.out.count("ok      ") == 3 and tested.out.count("FAILED  dead (slack)") == 1
        assert "3 of 4 channels took the test alert" in tested.out
        assert_shown_nowhere(secrets, {"stdout": out.out + status + tested.out,
                                       "stderr": out.err + tested.err},
                             tmp_path / "p.duckdb", tmp_path / "dlt-data", tmp_path / ".zap_runs")
    finally:
        sim.stop()


def test_an_incident_that_vanishes_is_told_resolved(make_simulator, http, tmp_path, request):
    """Replays can turn an incident's failures into successes: the next build has no such
    incident, and the channel that was told it opened is told it is over."""
    clock = ManualClock(START)
    world, (_, open_zap) = episode_world(clock)
    sim = make_simulator(world)
    pipeline = pipeline_for("duckdb", tmp_path, request, "vanish")
    run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
    build_models(pipeline)
    (gone,) = [i for i in incidents_of(pipeline, open_zap) if i["is_open"]]
    deliver(pipeline, [webhook(http)])
    assert transition_key(ACCOUNT, open_zap, gone["first_failed_run_id"], "opened") in http.taken()
    with pipeline.sql_client() as client:
        client.execute_sql(f"delete from {client.make_qualified_table_name('zap_incidents')} "
                           "where zap_id = %s", open_zap)
    deliver(pipeline, [webhook(http)])
    (last,) = http.ok()[-1].json["transitions"]
    assert last["event"] == "resolved" and last["reason"] == alerts.VANISHED
    assert last["idempotency_key"] == transition_key(ACCOUNT, open_zap, gone["first_failed_run_id"],
                                                     "resolved")
    assert "is no longer failing" in last["text"]


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "pager"}, "kind must be one of webhook, slack, email, file, terminal"),
    ({"kind": "webhook", "url": "https://x.example/h"}, "a webhook channel needs secret"),
    ({"kind": "slack", "url": "ftp://x"}, "url must be an http\\(s\\) URL"),
    ({"kind": "email", "smtp_host": "h", "from_addr": "a@b", "to": "nobody"}, "to must be one"),
    ({"kind": "slack", "url": "https://x.example/s", "digest": "yes"}, "digest must be true or false"),
    ({"kind": "slack", "url": "https://x.example/s", "token": "t"}, "unknown key 'token'"),
])
def test_a_bad_channel_is_a_config_error_that_shows_no_secret(table, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_channel("oncall", table, "[sources.zap_runs.alerts.oncall]")
    assert "x.example" not in str(caught.value) and "\n" not in str(caught.value)


def test_an_account_with_a_bad_channel_is_a_bad_entry_the_others_sync():
    found = collect(None, None, [{"name": "a", "access_token": "t1",
                                  "alerts": {"kind": "webhook", "url": "https://h.example/x"}},
                                 {"name": "b", "access_token": "t2"}], {})
    assert [a.name for a in found.accounts] == ["b"]
    assert "a webhook channel needs secret" in found.problems[0][1]
    assert "h.example" not in found.problems[0][1]


def test_the_loop_delivers_after_a_load_between_two_rebuilds_of_the_models(make_simulator, http,
                                                                           tmp_path, request):
    clock = ManualClock(START - timedelta(hours=10))  # before the second episode
    world, (_, second_zap) = episode_world(clock)
    sim = make_simulator(world)
    pipeline = pipeline_for("duckdb", tmp_path, request, "loop")
    run_sync(sim, pipeline, since=iso(START - timedelta(days=4)))
    build_models(pipeline)
    channel = webhook(http)
    deliver(pipeline, [channel])
    before = len(http.taken())
    clock.advance(timedelta(hours=10))
    rebuilt: list[int] = []
    stop = Stop()
    run_loop(pipeline, sync_config(), load_every=3600, models_every=24 * 3600, stop=stop,
             after_round=lambda *_: stop.set(),
             build_models=lambda: rebuilt.append(1) or "",
             after_load=lambda runs: "\n".join(alerts.summary_lines(
                 incidents_and_alerts(pipeline, [channel], rebuild=runs > 0))),
             base_url=sim.base_url, access_token=sim.token, requests_per_minute=0)
    (opened,) = [i for i in incidents_of(pipeline, second_zap) if i["is_open"]]
    assert http.taken()[before:] == [
        transition_key(ACCOUNT, second_zap, opened["first_failed_run_id"], "opened")]
    assert rebuilt == [1], "the models were rebuilt once, when the loop stopped, after the alert"


@pytest.mark.parametrize(("argv", "message"), [
    (["alerts"], "alerts needs an action: python -m pipelines.zap_runs alerts test"),
    (["models", "test"], "`test` goes with `alerts` only"),
    (["alerts", "test"], "no alert channel is configured"),
])
def test_alerts_arguments_a_user_gets_wrong_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_channel_url_is_not_logged_even_where_httpx_logs_at_info(http, caplog):
    """An app embedding the sync may log httpx at INFO, which names each request's URL."""
    url = http.url("/services/T0/B0/k3y").replace("http://", "HTTP://")  # httpx logs it lower case
    channel = parse_channel("slack", {"kind": "slack", "url": url}, "t")
    with caplog.at_level(logging.INFO, logger="httpx"):
        send(channel, [sample(channel)])
    assert http.ok("/services/T0/B0/k3y") and "k3y" not in caplog.text



def many_incidents(pipeline, count: int) -> None:
    """`count` open incidents of made-up zaps, written into the built zap_incidents."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("zap_incidents")
        for n in range(count):
            client.execute_sql(
                f"insert into {table} (account_id, zap_id, zap_title, opened_at, first_failed_at, "
                "last_failed_at, resolved_at, is_open, failed_runs, first_failed_run_id, "
                "first_failed_step, first_failed_status) values (%s, %s, %s, %s, %s, %s, null, "
                "true, 3, %s, 1, 'error')", ACCOUNT, 900 + n, f"made up {n}", START, START, START,
                f"run-{n}")


def test_many_at_once_go_as_digests_a_broken_channel_fails_alone_a_removed_one_is_dropped(
        make_simulator, http, tmp_path, request):
    clock = ManualClock(START)
    world, _ = episode_world(clock)
    pipeline = pipeline_for("duckdb", tmp_path, request, "many")
    run_sync(make_simulator(world), pipeline, since=iso(START - timedelta(days=4)))
    build_models(pipeline)
    many_incidents(pipeline, 60)
    broken = Channel("broken", "webhook", {"url": http.url("/broken"), "secret": 12345})
    http.fail["/hook"] = [500]
    now = datetime.now(UTC)
    first = deliver(pipeline, [broken, webhook(http)], now=now)
    assert [r.error for r in first.failing] == [
        "AttributeError: 'int' object has no attribute 'encode'", "HTTP 500 Internal Server Error"]
    (tried,) = http.received
    assert len(tried.json["transitions"]) == 50, "more than 10 at once: digests of at most 50"
    many_incidents(pipeline, 0)
    with pipeline.sql_client() as client:  # one more incident while the channel was down
        client.execute_sql(f"update {client.make_qualified_table_name('zap_incidents')} set "
                           "first_failed_run_id = 'run-x' where first_failed_run_id = 'run-0'")
    later = deliver(pipeline, [broken, webhook(http)], now=now + timedelta(minutes=1))
    keys = [r.headers["Idempotency-Key"] for r in http.received]
    assert keys[1] == keys[0], "the digest tried before goes again as it was, under its key"
    assert http.received[1].body == tried.body
    assert [r.channel.name for r in later.failing] == ["broken"] and later.sent >= 61
    assert [c["channel"] for c in failing_channels(pipeline)] == ["broken"]
    deliver(pipeline, [webhook(http)], now=now + timedelta(minutes=2))
    assert failing_channels(pipeline) == [], "a channel no longer configured is dropped"


def test_old_history_is_recorded_not_sent_and_an_open_incident_is_sent(make_simulator, http,
                                                                      tmp_path, request):
    clock = ManualClock(START)  # the first episode resolved 25 hours before the newest run
    world, (old_zap, open_zap) = episode_world(clock)
    pipeline = pipeline_for("duckdb", tmp_path, request, "old")
    run_sync(make_simulator(world), pipeline, since=iso(START - timedelta(days=4)))
    build_models(pipeline)
    delivery = deliver(pipeline, [webhook(http)])
    (old,) = incidents_of(pipeline, old_zap)
    (now_open,) = [i for i in incidents_of(pipeline, open_zap) if i["is_open"]]
    assert not old["is_open"] and delivery.skipped >= 2
    assert transition_key(ACCOUNT, open_zap, now_open["first_failed_run_id"], "opened") in http.taken()
    assert not [k for k in http.taken() if k in {transition_key(
        ACCOUNT, old_zap, old["first_failed_run_id"], event) for event in ("opened", "resolved")}]


def test_a_bad_alerts_configuration_loads_the_runs_then_exits_2(sim_env, tmp_path, monkeypatch,
                                                                capsys):
    set_env(monkeypatch, tmp_path / "bad.duckdb",
            alerts=json.dumps({"oncall": {"kind": "slack", "url": "https://h.example/s3cr3t",
                                          "colour": "red"}}))
    assert main([]) == 2
    out = capsys.readouterr()
    assert "zap-runs sync into duckdb dataset 'zapier': OK" in out.out
    assert "  alerts     NOT SENT: the runs are loaded, but no alert was sent: " \
           "[sources.zap_runs.alerts.oncall]: unknown key 'colour'" in out.out
    assert out.err.strip().splitlines()[-1].startswith("error: the runs are loaded")
    assert "s3cr3t" not in out.out + out.err
