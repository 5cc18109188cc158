"""`python -m pipelines.simulator`: every knob is a flag, bad values exit 2 in one line."""

from __future__ import annotations

import dataclasses
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from pipelines.simulator import Faults, WorldConfig
from pipelines.simulator.cli import build_parser, build_simulator, main, world_config
from pipelines.simulator.lifecycle import UNLISTED_OPEN_STATUSES
from pipelines.simulator.world import PROFILES

SMALL = ["--port", "0", "--zaps", "3", "--days", "2", "--runs-per-day", "300", "--rate-limit", "0"]


def get(sim, timeout: float = 10.0, **params) -> httpx.Response:
    return httpx.get(sim.base_url + "/v2/zap-runs", params=params, timeout=timeout,
                     headers={"Authorization": f"Bearer {sim.token}"})


@pytest.fixture
def serve() -> Callable[..., object]:
    """Start the simulator the flags describe, in this process; stopped after the test."""
    started = []

    def start(*flags: str):
        sim = build_simulator(build_parser().parse_args([*SMALL, *flags]))
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


def _overlap(sim) -> None:
    first = get(sim, limit=10).json()[0]["data"]
    second = get(sim, limit=10, offset=10).json()[0]["data"]
    assert second[0]["id"] in {r["id"] for r in first}, "the page starts a few runs early"


def _order_asc(sim) -> None:
    times = [sim.world.run(r["id"]).occurred_at for r in get(sim, limit=50).json()[0]["data"]]
    assert times == sorted(times)


def _rate_limit(sim) -> None:
    answers = [get(sim) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert {r.headers["X-RateLimit-Limit"] for r in answers} == {"2"}


def _retention(sim) -> None:
    oldest = min(sim.world.run(r["id"]).occurred_at
                 for r in get(sim, limit=100000).json()[0]["data"])
    assert oldest >= sim.world.clock.now() - timedelta(days=1)
    assert sim.world.started_at < sim.world.clock.now() - timedelta(days=1.9)  # 2 days were made


def _unlisted(sim) -> None:
    statuses = {r["status"] for r in get(sim, limit=100000).json()[0]["data"]}
    assert statuses & set(UNLISTED_OPEN_STATUSES), "recent runs still show an unlisted status"
    assert statuses <= {*UNLISTED_OPEN_STATUSES, "success", "error"}
    assert sim.world.config.unlisted_settle_hours == 3


def _delayed(sim) -> None:
    runs = get(sim, limit=100000).json()[0]["data"]
    delayed = [r for r in runs if r["status"] == "delayed"]
    assert len(delayed) > 100, "about 200 runs wait on a Delay step"
    assert sim.world.config.delayed_runs == 200 and sim.world.config.delay_max_days == 3


def _refresh_ttl(sim) -> None:
    granted = httpx.post(sim.base_url + "/oauth/token/", data={
        "grant_type": "refresh_token", "refresh_token": sim.tokens.issue_refresh(),
        "client_id": "sim-client", "client_secret": "sim-secret"})
    assert granted.json()["expires_in"] == 60


def _truncated(sim) -> None:
    cut = get(sim)
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        cut.json()


def _slow(sim) -> None:
    started = time.monotonic()
    assert get(sim).status_code == 200
    assert time.monotonic() - started >= 0.2


def _timeout(sim) -> None:
    with pytest.raises(httpx.ReadTimeout):
        get(sim, timeout=0.3)


CASES: dict[str, tuple[list[str], Callable]] = {
    "unavailable": (["--unavailable-rate", "1", "--fault-retry-after", "7"],
                    lambda sim: (r := get(sim)).status_code == 503 and r.headers["Retry-After"] == "7"),
    "retry-after-format": (["--unavailable-rate", "1", "--retry-after-format", "none"],
                           lambda sim: (r := get(sim)).status_code == 503
                           and "Retry-After" not in r.headers),
    "error": (["--error-rate", "1"], lambda sim: get(sim).status_code == 500),
    "html": (["--html-error-rate", "1"],
             lambda sim: get(sim).headers["content-type"].startswith("text/html")),
    "truncate": (["--truncate-rate", "1"], _truncated),
    "short-page": (["--short-page-rate", "1", "--body-shape", "object"],
                   lambda sim: 1 <= len(get(sim, limit=50).json()["data"]) < 50),
    "drop-next": (["--drop-next-rate", "1"],
                  lambda sim: get(sim, limit=5).json()[0]["links"]["next"] is None),
    "overlap": (["--overlap-rate", "1"], _overlap),
    "order": (["--order", "asc"], _order_asc),
    "max-limit": (["--max-limit", "7"], lambda sim: get(sim, limit=50).json()[0]["meta"]["limit"] == 7),
    "inflate-count": (["--inflate-count", "5"],
                      lambda sim: (p := get(sim, limit=100000).json()[0])["meta"]["count"]
                      == len(p["data"]) + 5),
    "corrupt": (["--corrupt-rate", "1", "--corruption", "bad_zap_id"],
                lambda sim: get(sim).json()[0]["data"][0]["zap_id"] == "not-a-number"),
    "script": (["--script", "500,429,200,503"],
               lambda sim: [get(sim).status_code for _ in range(5)] == [500, 429, 200, 503, 200]),
    "rate-limit": (["--rate-limit", "2", "--cooldown", "30"], _rate_limit),
    "retention": (["--retention-days", "1"], _retention),
    "unlisted": (["--unlisted-open-rate", "1", "--unlisted-settle-hours", "3"], _unlisted),
    "delayed-runs": (["--delayed-runs", "200", "--delay-min-days", "1", "--delay-max-days", "3"], _delayed),
    "access-ttl": (["--access-ttl", "60"], _refresh_ttl),
    "slow": (["--slow-seconds", "0.2"], _slow),
    "timeout": (["--timeout-rate", "1", "--hang-seconds", "1"], _timeout),
}


@pytest.mark.parametrize("case", CASES)
def test_each_flag_changes_what_the_server_answers(serve, case):
    flags, check = CASES[case]
    outcome = check(serve(*flags))
    assert outcome is None or outcome is True


def test_defaults_of_the_flags_are_the_library_defaults():
    args = build_parser().parse_args([])
    for field in dataclasses.fields(Faults):
        default = field.default_factory() if field.default is dataclasses.MISSING \
            else field.default
        assert getattr(args, field.name) == default, field.name
    assert args.profile == "default" and world_config(args) == WorldConfig()
    flags = {o for action in build_parser()._actions for o in action.option_strings}
    # Episodes start at given instants: tests and the demo script them, no flag does.
    for field in [f for f in dataclasses.fields(WorldConfig) if f.name != "episodes"]:
        flag = "--days" if field.name == "history_days" else "--" + field.name.replace("_", "-")
        assert flag in flags, f"WorldConfig.{field.name} has no flag"


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_flag_is_the_profile_and_flags_given_win(profile):
    parse = build_parser().parse_args
    assert world_config(parse(["--profile", profile])) == WorldConfig.profile(profile)
    mine = world_config(parse(["--profile", profile, "--runs-per-day", "5", "--days", "3", "--seed", "2",
                               "--delay-max-days", "9", "--late-replay-share", "0.3",
                               "--error-scale", "0.5", "--streaks-per-week", "2"]))
    assert mine == WorldConfig.profile(profile, runs_per_day=5, history_days=3, seed=2,
                                       delay_max_days=9, late_replay_share=0.3, error_scale=0.5,
                                       streaks_per_week=2)


@pytest.mark.parametrize("argv,named", [
    (["--truncate-rate", "2"], "--truncate-rate: must be between 0 and 1, got '2'"),
    (["--unavailable-rate", "lots"], "--unavailable-rate: expected a number, got 'lots'"),
    (["--short-page-rate", "nan"], "--short-page-rate"),
    (["--retention-days", "0"], "--retention-days: must be above 0"),
    (["--unlisted-open-rate", "-0.1"], "--unlisted-open-rate"),
    (["--hang-seconds", "inf"], "--hang-seconds"),
    (["--zaps", "2.5"], "--zaps: expected an integer"),
    (["--port", "70000"], "--port: must be between 0 and 65535"),
    (["--order", "random"], "--order: invalid choice"),
    (["--script", "500,abc"], "--script"),
    (["--script", "302"], "--script: expected 200 or error statuses"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--profile", "lazy"], "--profile: invalid choice: 'lazy'"),
    (["--delayed-runs", "-5"], "--delayed-runs: must be at least 0"),
    (["--delay-min-days", "0"], "--delay-min-days: must be above 0"),
    (["--replay-share", "1.5"], "--replay-share: must be between 0 and 1"),
    (["--late-replay-max-days", "0.5"], "--late-replay-max-days: must be at least 1"),
    (["--error-scale", "4"], "--error-scale: must be between 0 and 3"),
    (["--streaks-per-week", "-1"], "--streaks-per-week: must be at least 0"),
])
def test_bad_flag_values_exit_2_with_one_line(capsys, argv, named):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m pipelines.simulator: error: argument " if argv[0] != "--no-such-flag"
                          else "python -m pipelines.simulator: error: ")
    assert named in err and err.rstrip().endswith("(see --help)")


@pytest.mark.parametrize("argv,named", [
    (["--delay-min-days", "40"], "--delay-max-days must be at least --delay-min-days, not 30.0"),
    (["--profile", "replay-heavy", "--replay-share", "0.9"],
     "--replay-share plus --late-replay-share must be at most 1, not 0.9 + 0.2"),
])
def test_flags_that_disagree_exit_2_with_one_line_naming_them(capsys, argv, named):
    assert main([*argv, "--port", "0", "--days", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m pipelines.simulator: error: ") and named in err


def test_the_docs_list_every_flag():
    page = (Path(__file__).parents[1] / "docs" / "development.md").read_text(encoding="utf-8")
    section = page.split("\n## The Partner API simulator\n", 1)[1].split("\n## ", 1)[0]
    flags = {o for action in build_parser()._actions for o in action.option_strings if o.startswith("--")}
    missing = sorted(f for f in flags - {"--help"} if f"`{f}" not in section)
    assert not missing, f"docs/development.md's simulator section does not mention {missing}"


def _lines(proc: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return lines


def test_standalone_command_serves_the_flags_over_http():
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.simulator", *SMALL,
                             "--script", "503", "--retry-after-format", "http-date",
                             "--unlisted-open-rate", "0.5", "--profile", "replay-heavy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _lines(proc)
        banner, token_line = lines.get(timeout=60), lines.get(timeout=10)
        assert "simulator on http://127.0.0.1:" in banner, banner
        base = banner.split(" on ")[1].split()[0]
        token = token_line.split("access token:")[1].strip()
        faults_line = next(line for line in iter(lambda: lines.get(timeout=10), None)
                           if "faults:" in line)
        assert "rate limit:    off" in faults_line and "script=[503]" in faults_line
        account = lines.get(timeout=10)
        assert account.startswith("  account:       profile replay-heavy; ") and \
            "late_replay_share=0.2" in account and "history_days=2" in account, account
        headers = {"Authorization": f"Bearer {token}"}
        unavailable = httpx.get(base + "/v2/zap-runs", headers=headers, timeout=10)
        assert unavailable.status_code == 503 and "GMT" in unavailable.headers["Retry-After"]
        page = httpx.get(base + "/v2/zap-runs", params={"limit": 100000}, headers=headers, timeout=30)
        assert page.status_code == 200 and page.json()[0]["data"]
        assert not any(h.lower().startswith("x-ratelimit") for h in page.headers)
        assert {r["status"] for r in page.json()[0]["data"]} & set(UNLISTED_OPEN_STATUSES)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_port_in_use_is_one_line_and_exit_2(serve):
    taken = serve().base_url.rsplit(":", 1)[1]
    done = subprocess.run([sys.executable, "-m", "pipelines.simulator", "--port", taken, "--days", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{taken}" in done.stderr
