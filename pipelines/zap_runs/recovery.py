"""Finish what an interrupted sync left behind, and undo the rows a resumed load wrote twice.

A load job commits its rows in the destination, then dlt records the job as done. A sync
killed between the two (dlt narrows that gap but cannot close it: dlt-hub/dlt#3767) has the job
run again when the load resumes, so the same file's rows arrive twice, with the same `_dlt_id`.
An appending load then holds every such row twice; a merging load does too, because dlt's merge
picks the rows to insert by `_dlt_id` and both copies in staging share it. Rows a load wrote
twice are identical, so after a resumed load each of its tables keeps one copy of each.
"""

from __future__ import annotations

import logging

import dlt

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
        pipeline.load()
        if pipeline.destination.destination_name not in SQL_DIALECTS:
            # Files, not tables: nothing to delete from (such destinations only append anyway).
            log.warning("%s cannot drop rows a resumed load may have written twice",
                        pipeline.destination.destination_name)
            return
        for load_id in resumed:
            drop_replayed_rows(pipeline, load_id)


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
