"""A gap of dlt's merge: a root row staged twice is inserted twice.

dlt's delete-insert merge of a root table with nested tables picks the rows to insert by
`_dlt_id` (the first row of each primary key), then inserts every staged row with such a
`_dlt_id`: when one copy job ran twice into staging, both copies of its root rows go in. Nested
rows are deduplicated by their own `_dlt_id` and are not affected (dlt 1.31; docs/dlt-gaps.md
has a reproduction). A copy job runs twice when its COMMIT went through but the reply was lost
(a dropped connection): dlt retries it in the same load. On PostgreSQL dlt's unique index on
`_dlt_id` (create_indexes, on by default) makes the retry fail instead, and the next sync reads
those runs again (recovery.py); on warehouses without enforced keys (BigQuery, Snowflake) the
copies are dropped here after the load, and a reader may see them until then.
"""

from __future__ import annotations

import logging

import dlt
from dlt.common.pipeline import LoadInfo

from ..common.settings import SQL_DIALECTS

log = logging.getLogger(__name__)


def drop_rows_of_retried_copies(pipeline: dlt.Pipeline, info: LoadInfo | None) -> int:
    """After a load: keep one copy of each root row of a load whose copy job dlt ran more than
    once (a count when nothing doubled); the copies dropped."""
    if info is None or pipeline.destination.destination_name not in SQL_DIALECTS:
        return 0
    dropped = 0
    for package in info.load_packages:
        jobs = [job.job_file_info for job in package.jobs.get("completed_jobs", [])]
        if any(job.retry_count and job.file_format not in ("sql", "reference") for job in jobs):
            dropped += drop_doubled_runs(pipeline, package.load_id)
    return dropped


def drop_doubled_runs(pipeline: dlt.Pipeline, load_id: str) -> int:
    """Keep one copy of each zap_runs row the load `load_id` wrote more than once (copies are
    identical: the same `_dlt_id`); the copies dropped."""
    if "zap_runs" not in pipeline.default_schema.tables:
        return 0
    with pipeline.sql_client() as client:
        runs = client.make_qualified_table_name("zap_runs")
        own = f"_dlt_load_id = '{load_id}'"  # load ids are dlt's own digits and a dot
        [(extra,)] = client.execute_sql(
            f"select count(*) - count(distinct _dlt_id) from {runs} where {own}")
        if not extra:
            return 0
        kept = client.make_qualified_table_name(f"_zap_runs_doubled_{load_id.replace('.', '_')}")
        with client.begin_transaction():
            client.execute_sql(f"create table {kept} as select distinct * from {runs} where {own}")
            client.execute_sql(f"delete from {runs} where {own}")
            client.execute_sql(f"insert into {runs} select * from {kept}")
            client.execute_sql(f"drop table {kept}")
    log.warning("dropped %d rows the load %s had written twice to %s (a copy job dlt ran again "
                "after its commit)", extra, load_id, runs)
    return extra
