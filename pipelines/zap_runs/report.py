"""A short text report of the warehouse for the terminal: the zaps failing most."""

from __future__ import annotations

import dlt


def print_report(pipeline: dlt.Pipeline, days: int = 7, top: int = 8) -> None:
    """Zaps by error rate over the last `days` days (failed / finished runs)."""
    with pipeline.sql_client() as client:
        runs = client.make_qualified_table_name("zap_runs")
        rows = client.execute_sql(f"""
            select coalesce(zap_title, '(untitled)') as title, zap_id,
                   count(*) as count_runs,
                   sum(case when status = 'error' then 1 else 0 end) as count_failed,
                   sum(case when status in ('success', 'error', 'error_handled', 'halted')
                       then 1 else 0 end) as count_finished
            from {runs}
            where start_time >= current_timestamp - interval '{int(days)} days'
            group by 1, 2
            order by count_failed * 1.0 / nullif(count_finished, 0) desc nulls last, 3 desc
            limit {int(top)}""")
        total = client.execute_sql(f"select count(*) from {runs}")[0][0]
    print(f"Zaps failing most over the last {days} days ({total:,} runs in the warehouse):")
    print(f"  {'error rate':>10}  {'failed':>6}  {'runs':>6}  zap")
    for title, zap_id, count_runs, failed, finished in rows:
        rate = f"{failed / finished:.1%}" if finished else "n/a"
        print(f"  {rate:>10}  {failed:>6}  {count_runs:>6}  {title[:60]} ({zap_id})")
