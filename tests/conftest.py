"""Shared fixtures: a clean environment, the simulator over real HTTP, the demo, PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.simulator import Faults, ManualClock, Simulator, World, WorldConfig

from .readme_demo import SETTINGS_ENV, run_demo

PG_DSN = "postgresql://postgres:postgres@127.0.0.1:5432/test"  # trust auth: any password


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test sees a developer's Zapier or destination settings, or writes outside tmp_path."""
    for name in list(os.environ):
        if name.startswith(SETTINGS_ENV):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt-data"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m pipelines.zap_runs --demo` run once per session (about half a minute), in its own
    folder with a clean environment: (the finished process, the folder)."""
    folder = tmp_path_factory.mktemp("demo")
    return run_demo(folder), folder


def small_world(seed: int = 3, days: float = 6.0, clock: ManualClock | None = None,
                runs_per_day: float = 300, **overrides: object) -> World:
    config = WorldConfig(seed=seed, zaps=8, runs_per_day=runs_per_day, history_days=days,
                         **overrides)
    return World(config, clock)


# Step lists a run goes through: each hand-made run shows the first, then the second an hour on.
STEP_CHANGES = {"grows": (1, 3), "shrinks": (3, 1), "empties": (2, 0), "nulls": (2, None)}


def add_runs_whose_steps_change(world: World, at: datetime) -> dict[str, str]:
    """Runs (one per kind of change in STEP_CHANGES, all of one zap) seen `delayed` at `at`,
    settled an hour later with another step list; their ids, by kind."""
    from pipelines.simulator.lifecycle import Change, Run, iso

    def steps(count: int | None, status: str) -> list[dict] | None:
        if count is None:
            return None
        return [{"status": status, "start_time": iso(at + timedelta(seconds=i))} for i in range(count)]

    ids = {}
    for n, (kind, (first, then)) in enumerate(STEP_CHANGES.items()):
        run_id = f"00000000-0000-4000-8000-0000000005{n:02d}"
        start = at + timedelta(seconds=n)
        world.add(Run(id=run_id, zap_id=5150, zap_title="steps change", occurred_at=start,
                      status="delayed", start_time=start, end_time=None,
                      steps=steps(first, "filtered"), data_in={}, data_out={}),
                  [Change(at + timedelta(hours=1), "success", start, at + timedelta(hours=1),
                          steps(then, "success"))])
        ids[kind] = run_id
    return ids


class _WorldTime:
    """The sync's clock on a world's time: its now is the world's, its waits are real."""

    def __init__(self, world_clock: ManualClock) -> None:
        self.now = world_clock.now

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


@contextmanager
def on_world_time(world_clock: ManualClock) -> Iterator[None]:
    """Syncs inside the block read "now" from `world_clock`, as a real sync's clock and
    Zapier's agree: a world days behind the sync's clock would put a backfill part's end in the
    server's future (past_clock is three days back)."""
    from pipelines.zap_runs.common import clock

    with clock.use(_WorldTime(world_clock)):
        yield


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Simulator]]:
    """Start simulators on 127.0.0.1 (random ports); all are stopped after the test."""
    started: list[Simulator] = []

    def factory(world: World | None = None, *, faults: Faults | None = None,
                rate_limit: int | None = None, **kwargs: object) -> Simulator:
        sim = Simulator(world or small_world(), faults=faults, rate_limit=rate_limit, **kwargs)
        started.append(sim.start())
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim_env(make_simulator, monkeypatch):
    """A simulator the CLI reaches through SOURCES__ZAP_RUNS__* variables, unpaced."""
    sim = make_simulator()
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BASE_URL", sim.base_url)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__ACCESS_TOKEN", sim.token)
    monkeypatch.setenv("SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE", "0")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__BACKOFF_BASE", "0.01")
    return sim


@pytest.fixture
def past_clock() -> ManualClock:
    """A world clock three days behind the real one, so tests can step it forward up to now."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_dsn() -> str:
    """PostgreSQL on 127.0.0.1:5432: required in CI, skipped with a reason elsewhere."""
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI=true: .ci/run must start it")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (CI starts it; locally: "
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)")
    return PG_DSN
