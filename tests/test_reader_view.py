"""What a reader sees while a load runs: a reader polling the warehouse during a slow merge, and
during one that is killed half-way, sees the data before the load or after it, never half of
it (DuckDB and PostgreSQL merge in one transaction; docs/dlt-gaps.md says where that is not so)."""

from __future__ import annotations

import contextlib
import subprocess
from datetime import timedelta

import pytest

from pipelines.zap_runs.cli.main import main

from .conftest import small_world
from .failed_load import configure, drop_if_there, harness, harness_env, postgres_cli, stray_steps
from .warehouse import assert_matches_truth, duckdb_pipeline, warehouse_runs


def observe(pipeline) -> dict | None:
    """The runs a reader sees (warehouse_runs checks that each run's steps are its version's);
    None when the reader cannot open the warehouse now (a DuckDB file a writer holds)."""
    try:
        runs = warehouse_runs(pipeline)
        assert stray_steps(pipeline) == (0, 0)
    except Exception as exc:  # noqa: BLE001 - only DuckDB's lock may keep a reader out
        if "lock" not in str(exc).lower():
            raise
        return None
    return runs


@pytest.mark.parametrize(("destination", "killed"), [
    ("duckdb", True),
    pytest.param("postgres", False, marks=pytest.mark.postgres),
    pytest.param("postgres", True, marks=pytest.mark.postgres),
], ids=["duckdb-killed", "postgres-slow", "postgres-killed"])
def test_a_reader_polling_during_a_load_never_sees_half_of_it(make_simulator, past_clock, tmp_path,
                                                              monkeypatch, request, destination,
                                                              killed):
    world = small_world(seed=101, days=2, clock=past_clock)
    sim = make_simulator(world)
    db = tmp_path / "r.duckdb"
    configure(sim, db, monkeypatch)
    args: list[str] = []
    if destination == "postgres":
        args, pipeline = postgres_cli(request, monkeypatch, "reader")
    try:
        assert main(args) == 0
        if destination == "duckdb":
            pipeline = duckdb_pipeline(db)
        before = warehouse_runs(pipeline)
        past_clock.advance(timedelta(hours=6))
        marker = tmp_path / "in-merge"
        load = subprocess.Popen(harness("slow_merge", args), cwd=tmp_path,
                                env=harness_env(CRASH_SYNC_MARKER=str(marker)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen = []  # what the reader saw while the merge was half done
        while not marker.exists():  # a DuckDB reader that opened the file now would hold it
            with contextlib.suppress(subprocess.TimeoutExpired):
                load.wait(timeout=0.05)
            assert load.returncode is None, "the sync ended before its merge"
        while load.poll() is None:
            seen.append(observe(pipeline))
            if killed and len(seen) >= 3:
                load.kill()
        stderr = load.communicate(timeout=120)[1]
        after = observe(pipeline)
        assert seen, "the reader looked while the merge was half done"
        # Once the merge commits the reader sees the load whole (the sync goes on with its
        # models while the marker is there).
        assert all(view in (None, before, after) for view in seen), "half a load was visible"
        if killed:
            assert after == before
            assert main(args) == 0
        else:
            assert load.returncode == 0, stderr[-3000:]
            assert after != before and seen[0] == before, "the reader saw the merge under way"
        assert_matches_truth(pipeline, world.truth())
    finally:
        if destination == "postgres":
            drop_if_there(pipeline)
