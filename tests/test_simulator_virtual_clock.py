"""The virtual clock: time moves only when told, sleeps return at once, the simulator follows it;
a SharedClock is one such clock for several processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipelines.simulator import ManualClock, SharedClock, Simulator, VirtualClock, WorldConfig
from pipelines.simulator.cli import main

from .test_simulator_cli import SMALL, _lines

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["virtual", "shared"])
def make_clock(request, tmp_path):
    """VirtualClock(start), or a SharedClock(path, start) in tmp_path: one interface, one behaviour."""
    if request.param == "virtual":
        return VirtualClock
    return lambda start: SharedClock(tmp_path / "clock", start)


def test_sleep_moves_the_clock_and_returns_at_once(make_clock):
    clock = make_clock(START)
    began = time.monotonic()
    clock.sleep(3600)
    clock.sleep(0.25)
    assert time.monotonic() - began < 0.5, "a virtual hour takes no real time"
    assert clock.now() == START + timedelta(hours=1, seconds=0.25)
    assert clock.monotonic() == 3600.25 and clock.time() == START.timestamp() + 3600.25
    assert clock.advance(timedelta(minutes=1)) == START + timedelta(hours=1, minutes=1, seconds=0.25)
    assert clock.monotonic() == 3660.25
    assert isinstance(clock, ManualClock), "a ManualClock that sleeps: usable wherever one is"
    assert isinstance(clock, VirtualClock), "the simulator's rate rule and headers follow it"


def test_it_stands_still_unless_told(make_clock):
    clock = make_clock(START)
    time.sleep(0.01)
    assert clock.now() == START and clock.monotonic() == 0.0


def test_sleeps_from_many_threads_are_all_counted(make_clock):
    clock = make_clock(START)
    threads = [threading.Thread(target=lambda: [clock.sleep(0.5) for _ in range(1000)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() == 4000.0


@pytest.mark.parametrize("move,message", [
    (lambda clock: clock.sleep(-1), "cannot sleep -1 seconds"),
    (lambda clock: clock.sleep(float("nan")), "cannot sleep nan seconds"),
    (lambda clock: clock.advance(timedelta(seconds=-1)), "never goes backwards"),
    (lambda clock: clock.set(START - timedelta(seconds=1)), "never goes backwards"),
])
def test_it_never_goes_backwards(make_clock, move, message):
    clock = make_clock(START)
    with pytest.raises(ValueError, match=message):
        move(clock)
    assert clock.now() == START


def test_it_starts_at_an_aware_utc_time():
    with pytest.raises(ValueError, match="aware UTC time"):
        VirtualClock(datetime(2026, 11, 2, 9, 0))
    assert VirtualClock().now().tzinfo is not None


def test_the_simulator_lives_on_it_rate_rule_and_all():
    clock = VirtualClock(START)
    sim = Simulator(accounts=[("a", WorldConfig(seed=3, zaps=3, runs_per_day=2400, history_days=1))],
                    clock=clock, rate_limit=2, rate_window=60, cooldown=60, partner_limit=None)
    sim.start()
    try:
        headers = {"Authorization": f"Bearer {sim.accounts['a'].token}"}

        def get() -> httpx.Response:
            return httpx.get(sim.base_url + "/v2/zap-runs", headers=headers, timeout=10,
                             params={"limit": 100000, "from_date": "2000-01-01T00:00:00Z"})

        first = get()
        assert [first.status_code, get().status_code] == [200, 200]
        refused = get()
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
        clock.sleep(30)
        assert get().status_code == 429, "still cooling down: 30 virtual seconds passed"
        began = time.monotonic()
        clock.sleep(31)  # the cooldown is over in virtual time, at once in real time
        later = get()
        assert later.status_code == 200 and time.monotonic() - began < 5
        assert int(later.headers["X-RateLimit-Reset"]) == int(START.timestamp()) + 61 + 60
        assert [r["at"] for r in sim.zap_run_requests()] == [0.0, 0.0, 0.0, 30.0, 61.0]
        clock.sleep(86400)  # a simulated day, in no real time
        a_day_on = get()
        newer = {run["id"] for run in a_day_on.json()[0]["data"]} - \
            {run["id"] for run in first.json()[0]["data"]}
        assert 1500 < len(newer) < 3300, "a day's runs arrived"
    finally:
        sim.stop()


def _in_another_process(path, code: str) -> str:
    """Run `code` with `clock` = SharedClock(path) in a new Python process; what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", "from datetime import timedelta\n"
         "from pipelines.simulator import SharedClock\n"
         f"clock = SharedClock({str(path)!r})\n{code}"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_processes_see_one_time(tmp_path):
    clock = SharedClock(tmp_path / "clock", START)
    clock.advance(timedelta(seconds=90.5))
    seen = _in_another_process(tmp_path / "clock", "print(clock.now().isoformat(), clock.monotonic())\n"
                                                   "clock.sleep(9.5)")
    assert seen.split() == [(START + timedelta(seconds=90.5)).isoformat(), "90.5"]
    assert clock.now() == START + timedelta(seconds=100), "the other process's sleep moved it here"
    assert clock.monotonic() == 100.0 and clock.time() == START.timestamp() + 100


def test_a_later_clock_at_the_path_leaves_open_ones_alone(tmp_path):
    old = SharedClock(tmp_path / "clock", START)
    new = SharedClock(tmp_path / "clock", START - timedelta(days=1))
    assert old.now() == START, "a process that opened the old clock never sees time go back"
    assert SharedClock(tmp_path / "clock").now() == new.now() == START - timedelta(days=1)
    assert [p.name for p in tmp_path.iterdir()] == ["clock"], "no partial file is left"


def test_it_never_goes_backwards_across_processes(tmp_path):
    clock = SharedClock(tmp_path / "clock", START)
    _in_another_process(tmp_path / "clock", "clock.advance(timedelta(seconds=60))")
    with pytest.raises(ValueError, match="never goes backwards: it is at 2026-11-02T09:01:00"):
        clock.set(START + timedelta(seconds=30))  # ahead of what this process last saw, not of now
    assert clock.now() == START + timedelta(seconds=60)
    clock.set(START + timedelta(seconds=61))
    assert _in_another_process(tmp_path / "clock", "print(clock.monotonic())").strip() == "61.0"


def test_sleeps_from_many_processes_are_all_counted(tmp_path):
    """Four processes each sleep 0.5 s 2,000 times at once: no sleep is lost (flock), none undone."""
    SharedClock(tmp_path / "clock", START)
    code = ("import sys\nbefore = clock.monotonic()\nfor _ in range(2000):\n"
            "    at = clock.monotonic()\n    assert at >= before, (at, before)\n"
            "    before = at\n    clock.sleep(0.5)\n")
    procs = [subprocess.Popen([sys.executable, "-c", "from pipelines.simulator import SharedClock\n"
                               f"clock = SharedClock({str(tmp_path / 'clock')!r})\n{code}"],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert SharedClock(tmp_path / "clock").monotonic() == 4000.0


def test_opening_a_clock_that_is_not_there_says_who_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no shared clock at .*nope: the process that drives "
                                                r"time makes it first, with SharedClock\(path, start"):
        SharedClock(tmp_path / "nope")
    (tmp_path / "short").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="is not a shared clock: it holds 8 bytes, a clock 16"):
        SharedClock(tmp_path / "short")
    with pytest.raises(ValueError, match="aware UTC time"):
        SharedClock(tmp_path / "naive", datetime(2026, 11, 2, 9, 0))
    assert not (tmp_path / "naive").exists()


def test_the_command_line_refuses_a_missing_clock_file_in_one_line(capsys, tmp_path):
    assert main(["--port", "0", "--days", "0", "--clock-file", str(tmp_path / "nope")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m pipelines.simulator: error: --clock-file: no shared clock at ")


def test_a_simulator_in_another_process_runs_on_the_shared_clock(tmp_path):
    """The rate rule, Retry-After, X-RateLimit-Reset and the world all follow the clock this test moves."""
    clock = SharedClock(tmp_path / "clock", START)  # a month before the real time of writing
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.simulator", *SMALL, "--rate-limit", "2",
                             "--clock-file", str(tmp_path / "clock")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _lines(proc)
        banner, token_line = lines.get(timeout=60), lines.get(timeout=10)
        assert "simulator on http://127.0.0.1:" in banner, banner + proc.stderr.read()
        base = banner.split(" on ")[1].split()[0]
        headers = {"Authorization": f"Bearer {token_line.split('access token:')[1].strip()}"}
        clock_line = next(line for line in iter(lambda: lines.get(timeout=10), None) if "clock:" in line)
        assert f"shared through {tmp_path / 'clock'} (now 2026-11-02T09:00:00+00:00)" in clock_line

        def get() -> httpx.Response:
            return httpx.get(base + "/v2/zap-runs", headers=headers, timeout=30,
                             params={"limit": 100000, "from_date": "2000-01-01T00:00:00Z"})

        first, second, refused = get(), get(), get()
        assert [first.status_code, second.status_code, refused.status_code] == [200, 200, 429]
        assert first.headers["X-RateLimit-Reset"] == str(int(START.timestamp()) + 60)
        assert refused.headers["Retry-After"] == "60"
        newest = max(run["start_time"] or "" for run in first.json()[0]["data"])
        assert "2026-11-01T09:00" < newest <= "2026-11-02T09:00", "the world's now is the clock's"
        clock.advance(timedelta(seconds=30))
        cooling = get()
        assert cooling.status_code == 429 and cooling.headers["Retry-After"] == "30"
        clock.advance(timedelta(seconds=31))  # the cooldown ends in virtual time, at once in real time
        later = get()
        assert later.status_code == 200, later.text
        assert later.headers["X-RateLimit-Reset"] == str(int(START.timestamp()) + 61 + 60)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
