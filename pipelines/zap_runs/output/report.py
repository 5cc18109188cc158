"""A short text report for the terminal, read from the marts: what needs attention now."""

from __future__ import annotations

import dlt

from ..common.sqltables import exists
from .text import pct


def print_report(pipeline: dlt.Pipeline, top: int = 8) -> None:
    """Headline numbers, then the zaps that need attention (streaks, spikes, 7-day error rate);
    with several accounts, also the accounts that need attention, and each zap's account."""
    with pipeline.sql_client() as client:
        def q(name: str) -> str:
            return client.make_qualified_table_name(name)

        runs, finished, failed = client.execute_sql(
            f"select coalesce(sum(count_runs), 0), coalesce(sum(count_finished), 0), "
            f"coalesce(sum(count_failed), 0) from {q('zap_error_rates_daily')} "
            f"where day >= current_date - 7")[0]
        rows = client.execute_sql(f"""
            select coalesce(zap_title, '(untitled)'), zap_id, account_id, current_failure_streak,
                   error_rate_24h, error_rate_7d, is_spiking
            from {q('zap_health')}
            order by is_spiking desc, current_failure_streak desc,
                     error_rate_7d desc nulls last, account_id, zap_id
            limit {int(top)}""")
        failing_now = client.execute_sql(
            f"select count(*) from {q('zap_health')} where current_failure_streak > 0")[0][0]
        accounts = client.execute_sql(
            f"select account_id, needs_attention, attention_reason from {q('account_health')} "
            "order by account_id")
        # Models built by a version before zap_incidents have none.
        incidents = client.execute_sql(f"""
            select coalesce(zap_title, '(untitled)'), zap_id, account_id, first_failed_at,
                   failed_runs, first_failed_step
            from {q('zap_incidents')} where is_open
            order by first_failed_at, account_id, zap_id""") \
            if exists(client, q("zap_incidents")) else []
    rate = f"{failed / finished:.1%}" if finished else "n/a"
    print(f"Last 7 days: {runs:,} runs, error rate {rate} ({failed:,} failed of {finished:,} "
          f"finished); {failing_now} zaps failing now")
    several = len(accounts) > 1
    print(f"{len(incidents)} open incident{'' if len(incidents) == 1 else 's'}"
          + (":" if incidents else ""))
    for title, zap_id, account, since, failed_runs, step in incidents[:top]:
        where = f" in {account[:30]}" if several else ""
        at = f", first at step {step}" if step is not None else ""
        print(f"  {title[:50]} ({zap_id}){where}: failing since {since:%Y-%m-%d %H:%M} UTC, "
              f"{failed_runs} failed runs{at}")
    if several:
        needing = [(name, reason) for name, needs, reason in accounts if needs]
        print(f"{len(accounts)} accounts, {len(needing)} need attention"
              + (":" if needing else ""))
        for name, reason in needing[:top]:
            print(f"  {name[:30]}: {reason}")
    if not rows:
        print("No runs in the warehouse yet.")
        return
    print(f"  {'streak':>6}  {'24h':>6}  {'7d':>6}  zap")
    for title, zap_id, account, streak, rate_24h, rate_7d, spiking in rows:
        flag = "  SPIKE" if spiking else ""
        where = f" in {account[:30]}" if several else ""
        print(f"  {streak:>6}  {pct(rate_24h):>6}  {pct(rate_7d):>6}  {title[:60]} ({zap_id}){where}{flag}")
