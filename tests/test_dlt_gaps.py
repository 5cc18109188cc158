"""dlt behaviours zap-runs works around, pinned (docs/dlt-gaps.md, 4 and 5; 1 is pinned in
test_merge_gap.py, 3 in test_pipeline_folder.py). Each test fails when a dlt release changes the
behaviour: then the workaround it names can go."""

from __future__ import annotations

from pathlib import Path

import dlt


def test_dlt_still_keeps_every_version_of_the_pipeline_state(tmp_path):
    """Gap 4: forget deletes the old versions itself (warehouse/forget.py)."""
    pipeline = dlt.pipeline("versions", destination=dlt.destinations.duckdb(str(tmp_path / "v.duckdb")),
                            dataset_name="d", pipelines_dir=str(tmp_path / "pipelines"))

    @dlt.resource(name="t")
    def rows(n: int):
        dlt.current.resource_state()["cursor"] = n
        yield {"id": n}

    for n in range(3):
        pipeline.run(rows(n))
    with pipeline.sql_client() as client:
        [(versions,)] = client.execute_sql(
            f"select count(*) from {client.make_qualified_table_name('_dlt_pipeline_state')}")
    assert versions == 3


def test_dlt_still_dedups_nested_rows_in_a_window_over_every_column(tmp_path):
    """Gap 5: on DuckDB, where that window runs out of memory under the load's cap, the merge
    skips dlt's dedup (warehouse/destinations.py, DELETE_INSERT_IN_PROCESS)."""
    pipeline = dlt.pipeline("window", destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
                            dataset_name="d", pipelines_dir=str(tmp_path / "pipelines"))

    @dlt.resource(name="runs", primary_key="id",
                  write_disposition={"disposition": "merge", "strategy": "delete-insert"})
    def runs():
        yield [{"id": n, "steps": [{"n": 1, "status": "ok"}, {"n": 2, "status": "ok"}]}
               for n in range(3)]

    pipeline.run(runs())
    (load_id,) = pipeline.list_completed_load_packages()
    jobs = pipeline.get_load_package_info(load_id).jobs["completed_jobs"]
    sql = " ".join(Path(job.file_path).read_text() for job in jobs if job.file_path.endswith(".sql"))
    nested = sql.split('INSERT INTO "d"."runs__steps"', 1)[1].split(";", 1)[0]
    window = 'ROW_NUMBER() OVER (partition BY "_dlt_id" ORDER BY (SELECT NULL)) AS _dlt_dedup_rn, "n"'
    assert window in nested, "dlt's nested dedup changed: is skipping it on DuckDB still needed?"
