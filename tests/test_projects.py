"""Each project folder keeps its own pipeline: dlt's working folder, state and default DuckDB file
belong to the folder a sync runs in, never to the one where a pipeline of the name first ran."""

from __future__ import annotations

import errno
import os
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.simulator import ManualClock
from pipelines.zap_runs.accounts.state import read_states
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.warehouse import project
from pipelines.zap_runs.warehouse.pipeline import make_pipeline

from .conftest import small_world
from .warehouse import set_env


def run_ids(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute("select id from zapier.zap_runs").fetchall()}


def cursor_of(folder: Path) -> str:
    """The default account's cursor, as the project at `folder` stored it."""
    pipeline = make_pipeline(credentials=str(folder / "zap_runs.duckdb"),
                             pipelines_dir=str(project.pipelines_dir(folder=folder)))
    return read_states(pipeline, ["default"])["default"]["cursor"]


def sync_in(folder: Path, sim, monkeypatch, caplog, *args: str) -> str:
    """A sync from `folder` (as a user who cds there), against `sim`; what it logged."""
    folder.mkdir(exist_ok=True)
    monkeypatch.chdir(folder)
    set_env(monkeypatch, base_url=sim.base_url, access_token=sim.token, requests_per_minute=0)
    caplog.clear()
    assert main(list(args)) == 0
    return caplog.text


def truth_ids(sim) -> set[str]:
    return set(sim.world.truth(sim.world.clock.now() - timedelta(days=30)))


def test_two_projects_of_one_user_keep_their_own_file_and_cursor(make_simulator, tmp_path,
                                                                  monkeypatch, caplog):
    # One dlt data folder (DLT_DATA_DIR, as the autouse fixture sets it) for both projects.
    now = ManualClock(small_world().clock.now() - timedelta(days=1))
    later = ManualClock(now.now() - timedelta(days=2))
    sim_a = make_simulator(small_world(seed=3, days=5, clock=now))
    sim_b = make_simulator(small_world(seed=11, days=5, clock=later))
    a, b = tmp_path / "project-a", tmp_path / "project-b"
    err_a = sync_in(a, sim_a, monkeypatch, caplog)
    err_b = sync_in(b, sim_b, monkeypatch, caplog)
    assert f"created the DuckDB file {b / 'zap_runs.duckdb'}" in err_b
    assert str(a) not in err_b and str(b) not in err_a
    assert run_ids(a / "zap_runs.duckdb") == truth_ids(sim_a)
    assert run_ids(b / "zap_runs.duckdb") == truth_ids(sim_b)
    # Each state holds its own cursor: near its own world's now, a day apart.
    cursor_a, cursor_b = cursor_of(a), cursor_of(b)
    assert cursor_a > (now.now() - timedelta(hours=2)).isoformat()[:19]
    assert cursor_b < (later.now() + timedelta(hours=1)).isoformat()[:19] < cursor_a
    # And the next syncs go on from their own cursors.
    sync_in(a, sim_a, monkeypatch, caplog)
    assert run_ids(a / "zap_runs.duckdb") == truth_ids(sim_a)
    pipelines = Path(os.environ["DLT_DATA_DIR"]) / "pipelines"
    assert sorted(p.name for p in pipelines.iterdir()) == sorted(
        project.project_key(p) for p in (a, b))


def test_without_a_data_folder_the_pipeline_lives_in_the_project(monkeypatch, tmp_path):
    monkeypatch.delenv("DLT_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert project.pipelines_dir() == tmp_path.resolve() / ".dlt" / "pipelines"
    assert project.pipelines_dir("state/dlt") == tmp_path.resolve() / "state" / "dlt"
    assert project.duckdb_credentials("zap_runs") == str(tmp_path.resolve() / "zap_runs.duckdb")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", "data/mine.duckdb")
    assert project.duckdb_credentials("zap_runs") == str(tmp_path.resolve() / "data" / "mine.duckdb")


def test_a_moved_project_writes_its_own_file(sim_env, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SOURCES__ZAP_RUNS__PIPELINES_DIR", ".dlt/pipelines")
    first = tmp_path / "first"
    sync_in(first, sim_env, monkeypatch, caplog)
    moved = tmp_path / "moved"
    first.rename(moved)
    sync_in(moved, sim_env, monkeypatch, caplog)
    assert not first.exists()  # dlt's state says the pipeline first ran there; nothing went there
    assert run_ids(moved / "zap_runs.duckdb") == truth_ids(sim_env)


def test_the_first_run_after_the_upgrade_adopts_the_shared_folder_once(make_simulator, tmp_path,
                                                                       monkeypatch, caplog):
    sim = make_simulator()
    shared = Path(os.environ["DLT_DATA_DIR"]) / "pipelines"
    a, b = tmp_path / "project-a", tmp_path / "project-b"
    # The layout before: every project's pipeline in dlt's shared folder.
    monkeypatch.setenv("SOURCES__ZAP_RUNS__PIPELINES_DIR", str(shared))
    sync_in(a, sim, monkeypatch, caplog)
    monkeypatch.delenv("SOURCES__ZAP_RUNS__PIPELINES_DIR")
    err = sync_in(a, sim, monkeypatch, caplog)
    moved = [line for line in err.splitlines() if "moved this project's dlt working folder" in line]
    assert len(moved) == 1 and str(shared / "zap_runs") in moved[0]
    assert not (shared / "zap_runs").exists()
    assert (project.pipelines_dir(folder=a) / "zap_runs").is_dir()
    with duckdb.connect(str(a / "zap_runs.duckdb"), read_only=True) as con:
        (first, second), = [[r[0] for r in con.execute(
            "select window_from from zapier.zap_runs_sync_log order by started_at").fetchall()]]
    # The first read the API's 30 days; the adopted state went on from its cursor.
    assert first is None and second > sim.world.clock.now() - timedelta(hours=1)
    assert "moved" not in sync_in(a, sim, monkeypatch, caplog)
    assert run_ids(a / "zap_runs.duckdb") == truth_ids(sim)
    # Another project's folder is left where it is, and that is said.
    monkeypatch.setenv("SOURCES__ZAP_RUNS__PIPELINES_DIR", str(shared))
    sync_in(a, sim, monkeypatch, caplog)
    monkeypatch.delenv("SOURCES__ZAP_RUNS__PIPELINES_DIR")
    err = sync_in(b, sim, monkeypatch, caplog)
    assert f"left dlt's shared working folder {shared / 'zap_runs'} for {a}" in err
    assert (shared / "zap_runs").exists()
    assert run_ids(b / "zap_runs.duckdb") == truth_ids(sim)


@pytest.mark.parametrize("name", ["project-a", "weird name!"])
def test_project_keys_tell_folders_apart(tmp_path, name):
    one, two = tmp_path / "x" / name, tmp_path / "y" / name
    assert project.project_key(one) != project.project_key(two)
    assert project.project_key(one).startswith(name.replace(" ", "_").replace("!", "_"))


def test_the_duckdb_file_is_the_configured_one_in_every_form(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    here = tmp_path.resolve()
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__DATABASE", "data2.duckdb")
    assert project.duckdb_credentials("zap_runs") == str(here / "data2.duckdb")
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__DATABASE")
    for configured, expected in [("duckdb:///rel/x.duckdb", str(here / "rel" / "x.duckdb")),
                                 ("duckdb:////abs/x.duckdb", "/abs/x.duckdb"),
                                 ("md:my_db", None), (":memory:", None)]:
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", configured)
        assert project.duckdb_credentials("zap_runs") == expected, configured


def test_a_pipelines_folder_that_cannot_be_made_is_one_line(sim_env, tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SOURCES__ZAP_RUNS__PIPELINES_DIR", str(tmp_path / "a-file" / "pipelines"))
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot create the pipelines folder") and "pipelines_dir" in err[-1]


def test_the_upgrade_adopts_by_the_folder_dlt_ran_in(sim_env, tmp_path, monkeypatch, caplog):
    shared = Path(os.environ["DLT_DATA_DIR"]) / "pipelines"
    work = tmp_path / "cron-cwd"
    monkeypatch.setenv("SOURCES__ZAP_RUNS__PIPELINES_DIR", str(shared))
    sync_in(work, sim_env, monkeypatch, caplog)
    monkeypatch.delenv("SOURCES__ZAP_RUNS__PIPELINES_DIR")
    # A scheduler that sets DLT_PROJECT_DIR and runs from another folder: dlt recorded the
    # folder it ran in, where the DuckDB file is.
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path / "project"))
    said = sync_in(work, sim_env, monkeypatch, caplog)
    assert "moved this project's dlt working folder" in said
    assert (project.pipelines_dir(folder=tmp_path / "project") / "zap_runs").is_dir()
    with duckdb.connect(str(work / "zap_runs.duckdb"), read_only=True) as con:
        windows = [r[0] for r in con.execute(
            "select window_from from zapier.zap_runs_sync_log order by started_at").fetchall()]
    assert windows[0] is None and windows[1] is not None, "went on from the adopted cursor"


def test_a_move_across_disks_copies_then_renames_into_place(tmp_path):
    old, new = tmp_path / "shared" / "zap_runs", tmp_path / "project" / "zap_runs"
    (old / "load" / "loaded").mkdir(parents=True)
    (old / "state.json").write_text("{}")
    new.parent.mkdir()
    (new.parent / ".zap_runs.adopting").mkdir()  # left by a copy cut off before

    def other_disk(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    project._move(old, new, rename=other_disk)
    assert not old.exists() and (new / "state.json").read_text() == "{}"
    assert (new / "load" / "loaded").is_dir() and not (new.parent / ".zap_runs.adopting").exists()
