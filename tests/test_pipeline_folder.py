"""The pipeline folder stays bounded: loaded packages are pruned after each load, so its size
after many scheduled syncs is about its size after two."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dlt

from pipelines.simulator import ManualClock, Simulator
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.warehouse import project

from .conftest import small_world
from .warehouse import set_env


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_pipeline_folder_after_twelve_syncs_is_about_its_size_after_two(tmp_path, monkeypatch,
                                                                           capsys):
    clock = ManualClock(small_world().clock.now() - timedelta(days=1))
    sim = Simulator(small_world(seed=5, days=2, clock=clock), rate_limit=None).start()
    try:
        set_env(monkeypatch, base_url=sim.base_url, access_token=sim.token, requests_per_minute=0)
        folder = project.pipelines_dir(folder=tmp_path) / "zap_runs"
        sizes = {}
        for number in range(1, 13):
            assert main(["--log-level", "WARNING"]) == 0
            clock.advance(timedelta(minutes=15))  # a scheduled sync every 15 minutes
            sizes[number] = size(folder)
        capsys.readouterr()
        loaded = [p for p in (folder / "load" / "loaded").iterdir() if p.is_dir()]
        assert len(loaded) == 1, "the newest loaded package only"
        assert sizes[12] < 1.25 * sizes[2], sizes
    finally:
        sim.stop()


def test_a_package_half_deleted_by_a_crash_costs_the_sync_nothing(sim_env, tmp_path, capsys):
    import shutil

    assert main(["--log-level", "WARNING"]) == 0
    loaded = project.pipelines_dir(folder=tmp_path) / "zap_runs" / "load" / "loaded"
    (kept,) = [p for p in loaded.iterdir() if p.is_dir()]
    # A prune killed half-way through deleting an older package: its schema is gone.
    broken = loaded / "1000000000.5"
    shutil.copytree(kept, broken)
    (broken / "schema.json").unlink()
    assert main(["--log-level", "WARNING"]) == 0
    assert "error" not in capsys.readouterr().err
    assert [p.name for p in loaded.iterdir() if p.is_dir()] != [broken.name]
    assert not broken.exists() and len([p for p in loaded.iterdir() if p.is_dir()]) == 1


def test_extracted_files_hold_a_line_per_page(tmp_path):
    """dlt's extract writer as make_pipeline sets it (EXTRACT_WRITER): a page yielded is a line
    of its own. Joined, a round's pages made one line the normalizer parsed whole (60 MB for
    4 MB at 10,000 accounts); a dlt that reads the setting elsewhere fails this."""
    import gzip

    import dlt

    from pipelines.zap_runs.warehouse.pipeline import make_pipeline

    pipeline = make_pipeline("duckdb", "writer_test", pipeline_name="writer_test",
                             pipelines_dir=str(tmp_path), credentials=str(tmp_path / "w.duckdb"))

    @dlt.resource(name="pages")
    def pages():
        for page in range(3):
            yield [{"id": page * 100 + n, "steps": [{"n": n}]} for n in range(100)]

    pipeline.extract(pages())
    (load_id,) = pipeline.list_extracted_load_packages()
    jobs = pipeline.get_load_package_info(load_id).jobs["new_jobs"]
    (job,) = [j for j in jobs if j.job_file_info.table_name == "pages"]
    raw = Path(job.file_path).read_bytes()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    assert len([line for line in raw.splitlines() if line.strip()]) >= 3, "pages joined in a line"


def test_dlt_still_keeps_every_loaded_package(tmp_path):
    """The gap warehouse/packages.py closes (docs/dlt-gaps.md, 3): when a dlt release prunes loaded
    packages itself, this fails, and warehouse/packages.py can go."""
    pipeline = dlt.pipeline("keeps", destination=dlt.destinations.duckdb(str(tmp_path / "k.duckdb")),
                            dataset_name="d", pipelines_dir=str(tmp_path / "pipelines"))
    for n in range(3):
        pipeline.run([{"id": n}], table_name="t")
    assert len(pipeline.list_completed_load_packages()) == 3
