"""Finish what an interrupted sync left behind, without loading any row of it twice.

A load job commits its rows in the destination, then dlt records the job as done. A sync
killed between the two (dlt narrows that gap but cannot close it: dlt-hub/dlt#3767) has the job
run again when the load resumes, so the same file's rows would arrive twice, with the same
`_dlt_id`. Both tables are merged, so their jobs copy into the staging dataset and one merge job
then moves staging into the dataset in one transaction; dlt's merge picks the rows to insert by
`_dlt_id`, so both copies of a replayed job's rows would be inserted, and a reader would see
those runs twice. Before a load resumes, each staging table that a job may have written to
unrecorded is emptied and all of its jobs are queued again, so staging holds each row once when
the merge runs (`restage_unrecorded_copies`). Rows a load still wrote twice are dropped after
it (`drop_replayed_rows`): a copy job whose COMMIT went through but whose reply was lost (a
dropped connection) is run again by dlt in the same load (`drop_rows_of_retried_copies`).
"""

from __future__ import annotations

import logging
import os

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.utils import get_write_disposition
from dlt.common.storages import LoadStorage, LoadStorageConfiguration, PackageStorage
from dlt.common.storages.load_package import ParsedLoadJobFileName

from .settings import SQL_DIALECTS

log = logging.getLogger(__name__)


def finish_pending(pipeline: dlt.Pipeline) -> None:
    """Normalize and load what an interrupted sync left behind, before extracting anew."""
    if not pipeline.has_pending_data:
        return
    log.warning("finishing the load package an earlier sync left behind")
    if pipeline.list_extracted_load_packages():
        pipeline.normalize()
    resumed = pipeline.list_normalized_load_packages()
    if resumed:
        sql = pipeline.destination.destination_name in SQL_DIALECTS
        if sql:
            restage_unrecorded_copies(pipeline)
        pipeline.load()
        if not sql:
            # Files, not tables: nothing to delete from (such destinations only append anyway).
            log.warning("%s cannot drop rows a resumed load may have written twice",
                        pipeline.destination.destination_name)
            return
        for load_id in resumed:
            drop_replayed_rows(pipeline, load_id)


def restage_unrecorded_copies(pipeline: dlt.Pipeline) -> list[str]:
    """Empty each staging table a started, unrecorded job may have copied rows into, and queue
    every job of that table again; the tables emptied.

    dlt empties a package's staging tables once, when its load starts, so afterwards they hold
    only rows of that package's jobs. A job dlt recorded as done (completed, or started with a
    pending transition) is not run again and keeps its rows; a started job without that record
    runs again and must not find its rows there already. Emptying first and moving the files
    after makes an interrupted call safe to repeat: the unrecorded job still triggers it.
    """
    packages = normalized_packages(pipeline)
    emptied: list[str] = []
    for load_id in packages.list_packages():
        tables = packages.load_schema(load_id).tables
        unrecorded = sorted({
            job.table_name for job in _copy_jobs(packages.list_started_jobs(load_id))
            if get_write_disposition(tables, job.table_name) == "merge"
            and packages.load_pending_transition(load_id, job.file_name()) is None})
        if not unrecorded:
            continue
        with pipeline.sql_client() as client, client.with_staging_dataset():
            client.truncate_tables(*unrecorded)
        for job in _copy_jobs(packages.list_started_jobs(load_id)):
            if job.table_name in unrecorded:
                packages.clear_pending_transition(load_id, job.file_name())  # run it again
        completed = PackageStorage.COMPLETED_JOBS_FOLDER
        for job in _copy_jobs(packages.storage.list_folder_files(
                packages.get_job_state_folder_path(load_id, completed))):
            if job.table_name in unrecorded:
                packages.storage.atomic_rename(
                    packages.get_job_file_path(load_id, completed, job.file_name()),
                    packages.get_job_file_path(load_id, PackageStorage.NEW_JOBS_FOLDER,
                                               job.file_name()))
        log.warning("the interrupted load %s may have staged rows of %s without recording it: "
                    "staged again from its files", load_id, ", ".join(unrecorded))
        emptied.extend(unrecorded)
    return emptied


def normalized_packages(pipeline: dlt.Pipeline) -> PackageStorage:
    """The pipeline's load packages that are normalized and not fully loaded yet."""
    config = LoadStorageConfiguration(load_volume_path=os.path.join(pipeline.working_dir, "load"))
    return LoadStorage(False, [], config).normalized_packages


def _copy_jobs(paths: list[str]) -> list[ParsedLoadJobFileName]:
    """The jobs among `paths` that copy rows from a file (not dlt's SQL follow-up jobs)."""
    jobs = [ParsedLoadJobFileName.parse(os.path.basename(path)) for path in paths]
    return [job for job in jobs if job.file_format not in ("sql", "reference")]


def drop_rows_of_retried_copies(pipeline: dlt.Pipeline, info: LoadInfo | None) -> int:
    """After a load: drop the copies a copy job dlt ran more than once may have left.

    A job whose commit went through but whose acknowledgement was lost (a connection dropped
    at COMMIT) fails on our side, and dlt runs it again in the same load, into staging that
    already holds its rows. Nothing can tell that apart from a job that failed before its
    commit, so every load with a retried copy job is checked (a count when nothing doubled).
    """
    if info is None or pipeline.destination.destination_name not in SQL_DIALECTS:
        return 0
    dropped = 0
    for package in info.load_packages:
        jobs = [job.job_file_info for job in package.jobs.get("completed_jobs", [])]
        if any(job.retry_count for job in _copy_jobs([job.file_name() for job in jobs])):
            dropped += drop_replayed_rows(pipeline, package.load_id)
    return dropped


def drop_replayed_rows(pipeline: dlt.Pipeline, load_id: str) -> int:
    """Keep one copy of each row the load `load_id` wrote more than once; the copies dropped."""
    if "zap_runs" not in pipeline.default_schema.tables:
        return 0
    dropped = 0
    with pipeline.sql_client() as client:
        runs = client.make_qualified_table_name("zap_runs")
        steps = client.make_qualified_table_name("zap_runs__steps")
        own_runs = f"_dlt_load_id = '{load_id}'"  # load ids are dlt's own digits and a dot
        own_steps = f"_dlt_root_id in (select _dlt_id from {runs} where {own_runs})"
        tables = [(runs, own_runs)]
        if "zap_runs__steps" in pipeline.default_schema.tables:
            tables.append((steps, own_steps))
        for table, rows in tables:
            [(extra,)] = client.execute_sql(
                f"select count(*) - count(distinct _dlt_id) from {table} where {rows}")
            if not extra:
                continue
            # The copies are identical, so the distinct rows are exactly the rows to keep.
            kept = client.make_qualified_table_name(f"_zap_runs_replayed_{load_id.replace('.', '_')}")
            with client.begin_transaction():
                client.execute_sql(f"create table {kept} as select distinct * from {table} where {rows}")
                client.execute_sql(f"delete from {table} where {rows}")
                client.execute_sql(f"insert into {table} select * from {kept}")
                client.execute_sql(f"drop table {kept}")
            log.warning("dropped %d rows the resumed load %s had written twice to %s", extra,
                        load_id, table)
            dropped += extra
    return dropped
