"""Benchmark: rebuild every SQL model over N runs (default 10 million, 3 steps each) in DuckDB.

The raw tables are generated inside DuckDB (not timed), as one account ('default', the
account_id a single-account sync writes); the model rebuild is timed.
Usage: python benchmarks/models_10m.py [--runs 10000000] [--db /tmp/zap_runs_10m.duckdb]
"""

from __future__ import annotations

import argparse
import os
import time

import dlt
import duckdb

from pipelines.zap_runs.warehouse.models import build_models

STATUSES = ("['success','success','success','success','success','success','success','error',"
            "'filtered','halted','error_handled','delayed','held','skipped','mystery']")


def generate(path: str, runs: int) -> None:
    con = duckdb.connect(path)
    con.execute("create schema if not exists zapier")
    con.execute(f"""
        create or replace table zapier.zap_runs as
        select 'default' as account_id,
               'run-' || i as id,
               (i % 1000) as zap_id,
               'Zap ' || (i % 1000) as zap_title,
               {STATUSES}[1 + (hash(i) % 15)::int] as status,
               (current_timestamp - interval 60 day) + to_seconds((i * 60 * 86400 // {runs})::bigint)
                   as start_time,
               (current_timestamp - interval 60 day) + to_seconds((i * 60 * 86400 // {runs})::bigint)
                   + to_seconds((hash(i * 7) % 120)::bigint) as end_time,
               '{{}}' as data_in, '{{}}' as data_out,
               now() as fetched_at, 'load' as _dlt_load_id, 'd' || i as _dlt_id
        from range({runs}) t(i)""")
    con.execute("""
        create or replace table zapier.zap_runs__steps as
        select r.account_id, r.id as run_id, s::bigint + 1 as step_number, r.zap_id,
               case when s = 2 and r.status = 'error' then 'error' else 'success' end as status,
               r.start_time + to_seconds(s) as start_time,
               r._dlt_id as _dlt_root_id, r._dlt_id as _dlt_parent_id, s::bigint as _dlt_list_idx,
               r._dlt_id || '-' || s as _dlt_id
        from zapier.zap_runs r, range(3) t(s)""")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--db", default="/tmp/zap_runs_10m.duckdb")
    parser.add_argument("--keep", action="store_true", help="reuse the generated file if present")
    args = parser.parse_args()
    if not (args.keep and os.path.exists(args.db)):
        if os.path.exists(args.db):
            os.remove(args.db)
        started = time.perf_counter()
        generate(args.db, args.runs)
        print(f"generated {args.runs:,} runs and {3 * args.runs:,} steps in "
              f"{time.perf_counter() - started:.1f} s (not part of the figure)")
    pipeline = dlt.pipeline("zap_runs_bench_models", destination=dlt.destinations.duckdb(args.db),
                            dataset_name="zapier", pipelines_dir="/tmp/zap_runs_bench_models")
    started = time.perf_counter()
    timings = build_models(pipeline)
    total = time.perf_counter() - started
    for name, seconds in timings.items():
        print(f"  {name:28s} {seconds:6.2f} s")
    print(f"all models rebuilt over {args.runs:,} runs in {total:.2f} s (wall, including connect)")


if __name__ == "__main__":
    main()
