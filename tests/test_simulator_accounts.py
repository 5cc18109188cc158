"""Many accounts in one simulator: the bearer token picks the world, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest

from pipelines.simulator import Simulator, WorldConfig
from pipelines.simulator.accounts import account_mix, heavy_mix, kind_of
from pipelines.simulator.budget import snapshot, truth_budget
from pipelines.simulator.cli import _print_accounts as print_accounts
from pipelines.simulator.cli import build_parser, build_simulator, main
from pipelines.zap_runs.cli.main import main as zap_runs

from .contract import ERROR


def small(seed: int) -> WorldConfig:
    return WorldConfig(seed=seed, zaps=3, runs_per_day=200, history_days=2)


@pytest.fixture
def serve() -> Iterator[Callable[..., Simulator]]:
    """Start a Simulator(**kwargs) (or Simulator.many(n, **kwargs)) on 127.0.0.1; stopped after."""
    started: list[Simulator] = []

    def start(n: int | None = None, **kwargs: object) -> Simulator:
        kwargs.setdefault("rate_limit", None)
        sim = Simulator.many(n, **kwargs) if n is not None else Simulator(**kwargs)
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


def get(sim: Simulator, token: str, client: httpx.Client | None = None, **params) -> httpx.Response:
    return (client or httpx).get(sim.base_url + "/v2/zap-runs", params={"limit": 100000, **params},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=30)


def ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {run["id"] for run in response.json()[0]["data"]}


def refresh(sim: Simulator, refresh_token: str) -> httpx.Response:
    return httpx.post(sim.base_url + "/oauth/token/", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": "sim-client", "client_secret": "sim-secret"}, timeout=10)


def test_each_account_sees_its_own_runs_and_the_log_says_whose(serve):
    sim = serve(accounts=[("a", small(1)), ("b", small(2))])
    a, b = sim.accounts["a"], sim.accounts["b"]
    seen_a, seen_b = ids(get(sim, a.token)), ids(get(sim, b.token))
    assert seen_a == set(a.world.truth()) and seen_b == set(b.world.truth())
    assert seen_a and seen_b and not seen_a & seen_b
    assert {z.id for z in a.world.zaps}.isdisjoint({z.id for z in b.world.zaps})
    assert get(sim, "not-a-token").status_code == 401
    assert [r["account"] for r in sim.zap_run_requests()] == ["a", "b", None]
    assert len(sim.zap_run_requests("b")) == 1


def test_a_refreshed_token_stays_on_its_account(serve):
    sim = serve(world=None, accounts=[("a", small(1)), ("b", small(2))])
    granted = refresh(sim, sim.issue_refresh("b"))
    assert granted.status_code == 200
    assert ids(get(sim, granted.json()["access_token"])) == set(sim.accounts["b"].world.truth())
    again = refresh(sim, granted.json()["refresh_token"])  # the rotated one: still b's
    assert ids(get(sim, again.json()["access_token"])) == set(sim.accounts["b"].world.truth())
    assert [r["account"] for r in sim.requests if r["method"] == "POST"] == ["b", "b"]


def test_revoking_an_account_refuses_its_tokens_only(serve):
    sim = serve(accounts=[("a", small(1)), ("b", small(2))])
    a_refresh, a_stale = sim.issue_refresh("a"), sim.issue_refresh("a")
    a_refreshed = refresh(sim, a_refresh).json()["access_token"]
    assert get(sim, a_refreshed).status_code == 200
    # Its first token, the unused refresh token, the refreshed access token and the refresh
    # token that came with it.
    assert sim.revoke("a") == 4
    for token in (sim.accounts["a"].token, a_refreshed):
        refused = get(sim, token)
        assert refused.status_code == 401
        ERROR.validate(refused.json())
    assert refresh(sim, a_stale).json()["error"] == "invalid_grant"
    assert get(sim, sim.accounts["b"].token).status_code == 200
    assert get(sim, sim.issue_access("a")).status_code == 200, "a token issued after the revoke works"


def test_a_token_without_the_zap_runs_scope_gets_403_and_builds_no_world(serve):
    sim = serve(accounts=[("a", small(1))])
    scopeless = sim.add_account("scopeless", small(3), scopes=())
    for token in (scopeless.token, sim.issue_access("a", scopes=("zap",))):
        refused = get(sim, token)
        assert refused.status_code == 403
        assert "zap:runs" in refused.json()["errors"][0]["detail"]
    assert not scopeless.built and not sim.accounts["a"].built
    assert [r["account"] for r in sim.requests] == ["scopeless", "a"]


def test_worlds_are_built_on_their_accounts_first_request_only(serve):
    sim = serve(5, seed=3, overrides={"history_days": 0.5})
    assert list(sim.accounts) == [f"acct-000{i}" for i in range(1, 6)]
    assert not any(account.built for account in sim.accounts.values())
    quiet = next(account for account in sim.accounts.values() if account.kind == "quiet")
    assert ids(get(sim, quiet.token)) == set(quiet.world.truth())
    assert [name for name, account in sim.accounts.items() if account.built] == [quiet.name]
    with pytest.raises(AttributeError, match="named accounts only"):
        sim.world  # noqa: B018 - no "default" account here


def test_the_one_account_api_is_the_default_account(serve):
    sim = serve(config=small(1))
    assert list(sim.accounts) == ["default"] and sim.accounts["default"].token == sim.token
    assert sim.accounts["default"].world is sim.world and sim.accounts["default"].built
    other = sim.add_account("other", small(2))
    assert ids(get(sim, sim.token)) == set(sim.world.truth())
    assert ids(get(sim, other.token)) == set(other.world.truth())
    with pytest.raises(ValueError, match="already an account named 'other'"):
        sim.add_account("other", small(3))


def test_the_mix_is_seeded_and_mostly_quiet_with_default_and_busy_accounts():
    mix = account_mix(300, seed=5)
    assert mix == account_mix(300, seed=5) and mix != account_mix(300, seed=6)
    assert [name for name, _ in mix] == [f"acct-{i:04d}" for i in range(1, 301)]
    kinds = [kind_of(config) for _, config in mix]
    assert kinds.count("busy") == 3 and kinds.count("default") == 18 and kinds.count("quiet") == 279
    for (_, config), kind in zip(mix, kinds, strict=True):
        assert config.history_days == 7
        if kind == "quiet":
            assert 2 <= config.runs_per_day <= 50 and 1 <= config.zaps <= 5
        elif kind == "busy":
            assert 2_000 <= config.runs_per_day <= 5_000
        else:
            assert config.runs_per_day == 800 and config.zaps == 25
    assert len({config.seed for _, config in mix}) == 300
    assert sorted(kind_of(c) for _, c in account_mix(3, seed=1)) == ["busy", "default", "quiet"]
    shared = account_mix(4, seed=1, history_days=2, unlisted_open_rate=0.1)
    assert all(c.history_days == 2 and c.unlisted_open_rate == 0.1 for _, c in shared)
    with pytest.raises(ValueError, match="the mix draws runs_per_day"):
        account_mix(4, runs_per_day=10)


def test_truth_budget_per_account(serve, past_clock):
    sim = serve(accounts=[("a", small(1)), ("b", small(2))], clock=past_clock)
    a, b = sim.accounts["a"].world, sim.accounts["b"].world
    before_a, before_b = snapshot(a), snapshot(b)
    past_clock.advance(timedelta(hours=2))
    new_a = {r for r in a.truth() if a.run(r).occurred_at >= before_a.at}
    new_b = {r for r in b.truth() if b.run(r).occurred_at >= before_b.at}
    assert new_a and new_b and not new_a & new_b
    assert truth_budget(a, before_a, 100).new == len(new_a)
    assert truth_budget(b, before_b, 100).new == len(new_b)


def from_address(host: str) -> httpx.Client:
    """A client whose requests leave from `host` (any 127.x address is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=host))


def test_the_partner_limit_counts_every_client_and_account(serve):
    sim = serve(accounts=[("a", small(1)), ("b", small(2))], rate_limit=3, partner_limit=5,
                cooldown=60)
    a, b = sim.accounts["a"].token, sim.accounts["b"].token
    with from_address("127.0.0.1") as one, from_address("127.0.0.2") as two, \
            from_address("127.0.0.3") as three:
        assert [get(sim, a, one, limit=1).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert [get(sim, b, two, limit=1).status_code for _ in range(2)] == [200, 200]
        refused = [get(sim, b, two, limit=1), get(sim, a, three, limit=1)]
    assert [r.status_code for r in refused] == [429, 429]
    for response in refused:
        ERROR.validate(response.json())
        assert "partner" in response.json()["errors"][0]["detail"]
        assert 55 <= int(response.headers["Retry-After"]) <= 60
        assert response.headers["X-RateLimit-Limit"] == "3"  # the headers state the client's window
    assert sim.limiter.refused == 1 and sim.partner_limiter.refused == 2
    assert {r["client"] for r in sim.requests} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_no_partner_limit_while_rate_limiting_is_off(serve):
    sim = serve(accounts=[("a", small(1))], rate_limit=None, partner_limit=2)
    assert sim.partner_limiter is None
    assert [get(sim, sim.accounts["a"].token, limit=1).status_code for _ in range(3)] == [200] * 3


@pytest.mark.parametrize("argv,named", [
    (["--accounts", "0"], "--accounts: must be at least 1"),
    (["--accounts", "3", "--runs-per-day", "5"], "--runs-per-day size one account"),
    (["--accounts", "3", "--zaps", "2"], "--zaps size one account"),
    (["--accounts", "3", "--profile", "busy"], "leave out --profile"),
    (["--accounts-file", "accounts.jsonl"], "--accounts-file lists the accounts of --accounts N"),
    (["--accounts", "3", "--accounts-file", "no/such/folder/a.jsonl"],
     "cannot write --accounts-file no/such/folder/a.jsonl (No such file or directory)"),
    (["--partner-limit", "-1"], "--partner-limit: must be at least 0"),
    (["--mix", "heavy"], "--mix picks the accounts of --accounts N: give both"),
    (["--mix", "lumpy"], "--mix: invalid choice: 'lumpy'"),
    (["--world-memory-mb", "50"], "--world-memory-mb bounds the worlds of the accounts of --accounts N"),
    (["--accounts", "3", "--world-memory-mb", "-1"], "--world-memory-mb: must be at least 0"),
])
def test_account_flags_that_cannot_work_exit_2_with_one_line(capsys, argv, named):
    try:
        code = main([*argv, "--port", "0", "--days", "0"])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m pipelines.simulator: error: ") and named in err, err


@pytest.mark.parametrize("bound,said", [
    (["--world-memory-mb", "5"], "idle ones evicted past 5 MB (estimated)"),
    (["--world-memory-mb", "0"], "never evicted"),
    ([], "idle ones evicted past 1000 MB (estimated)"),
])
def test_the_heavy_mix_and_the_worlds_memory_bound_from_the_command_line(capsys, bound, said):
    args = build_parser().parse_args(["--port", "0", "--accounts", "300", "--mix", "heavy",
                                      "--seed", "3", *bound])
    sim = build_simulator(args)
    try:
        assert [(name, account.config) for name, account in sim.accounts.items()] == heavy_mix(300, 3)
        assert sim.worlds.memory_mb == {"5": 5, "0": None}.get(bound[-1] if bound else "", 1000)
        print_accounts(sim, args)
    finally:
        sim.stop()
    out = capsys.readouterr().out
    assert "(300 accounts: heavy-tailed: 3 make half of the 6,000 runs a day, 27 two fifths, 270 a " \
           "tenth; about 6,000 runs once all are built, each world on its account's first request)" in out
    assert ("  accounts:      the heavy mix; mix seed 3; every account: history_days=1, "
            f"error_scale=0.68, streaks_per_week=1; worlds: {said}\n") in out


def _serve(*flags: str) -> tuple[subprocess.Popen, queue.Queue]:
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.simulator", "--port", "0", "--rate-limit",
                             "0", "--days", "0.5", *flags], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return proc, lines


def _check_tokens(base: str, tokens: dict[str, str]) -> None:
    seen = {}
    for name, token in tokens.items():
        page = httpx.get(base + "/v2/zap-runs", params={"limit": 100000}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200, (name, page.text)
        seen[name] = {run["id"] for run in page.json()[0]["data"]}
    assert all(seen.values()) and sum(map(len, seen.values())) == len(set().union(*seen.values()))


def test_the_command_prints_each_account_and_its_token():
    proc, lines = _serve("--accounts", "3", "--seed", "2")
    try:
        banner = lines.get(timeout=60)
        assert "(3 accounts: 1 quiet, 1 default-sized, 1 busy;" in banner, banner
        base = banner.split(" on ")[1].split()[0]
        printed = [lines.get(timeout=10) for _ in range(7)]
        assert any("mix seed 2; every account: history_days=0.5" in line for line in printed)
        tokens = dict(line.split()[:2] for line in printed if line.startswith("  acct-"))
        assert list(tokens) == ["acct-0001", "acct-0002", "acct-0003"]
        _check_tokens(base, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_command_writes_the_accounts_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "accounts.jsonl"
    proc, lines = _serve("--accounts", "4", "--accounts-file", str(path))
    try:
        banner = lines.get(timeout=60)
        base = banner.split(" on ")[1].split()[0]
        printed = [lines.get(timeout=10) for _ in range(6)]
        sync_all = next(line for line in printed if line.startswith("  sync all: ")).rstrip("\n")
        env, command = sync_all.removeprefix("  sync all: ").split(" python -m pipelines.zap_runs ")
        assert env == f"SOURCES__ZAP_RUNS__BASE_URL={base}" and command == f"--accounts-file {path}"
        # The command it prints syncs every account.
        monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", base)
        monkeypatch.setenv("SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE", "0")
        assert zap_runs(command.split()) == 0
        assert "accounts   4: 4 synced" in capsys.readouterr().out
        accounts = [json.loads(line) for line in path.read_text().splitlines()]
        assert [a["name"] for a in accounts] == ["acct-0001", "acct-0002", "acct-0003", "acct-0004"]
        assert all(set(a) == {"name", "access_token", "refresh_token", "client_id", "client_secret"}
                   for a in accounts)
        _check_tokens(base, {a["name"]: a["access_token"] for a in accounts})
        fourth = accounts[3]
        granted = httpx.post(base + "/oauth/token/", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": fourth["refresh_token"],
            "client_id": fourth["client_id"], "client_secret": fourth["client_secret"]})

        def read(token: str) -> set[str]:
            page = httpx.get(base + "/v2/zap-runs", params={"limit": 100000}, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
            return {run["id"] for run in page.json()[0]["data"]}

        before = read(accounts[3]["access_token"])
        assert before <= read(granted.json()["access_token"]), "the refreshed token reads acct-0004"
        assert not before & read(accounts[2]["access_token"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
