"""`status`: when the last sync ran and succeeded, its window, data freshness, any warning."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import dlt

from . import settings
from .errors import ZapRunsError, first_line
from .synclog import last_outcomes


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    hours = (now - when).total_seconds() / 3600
    text = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({text} ago)"


def status_command(args: argparse.Namespace) -> int:
    """Print the sync's health; exit 1 when the last success is older than --max-age."""
    from .cli import dataset_name
    from .pipeline import make_pipeline

    max_age = args.max_age
    if max_age is None:
        max_age = float(dlt.config.get("sources.zap_runs.stale_after_hours")
                        or settings.DEFAULT_STALE_AFTER_HOURS)
    pipeline = make_pipeline(args.destination, dataset_name(args))
    try:
        last, success = last_outcomes(pipeline)
        with pipeline.sql_client() as client:
            newest = client.execute_sql(
                f"select max(start_time) from {client.make_qualified_table_name('zap_runs')}")[0][0]
    except Exception as exc:  # noqa: BLE001 - no log table or no data yet
        raise ZapRunsError(f"no sync has been recorded in {args.destination} dataset "
                           f"{pipeline.dataset_name!r} yet ({first_line(exc, 120)}); "
                           "run a sync first.") from None
    now = datetime.now(UTC)
    print(f"zap-runs status ({args.destination} dataset {pipeline.dataset_name!r})")
    if last is not None:
        print(f"  last sync      {_age(last['started_at'], now)}: {last['result']}"
              + (f" ({last['error']})" if last["error"] else ""))
    print(f"  last success   {_age(success and success['ended_at'], now)}")
    if success is not None:
        window_from = success["window_from"]
        print(f"  window         {window_from or 'API default (30 days)'} -> {success['window_to']}")
        print(f"  runs           {success['runs_fetched']} fetched, {success['runs_new']} new, "
              f"{success['open_runs']} still open")
        if success["warning"]:
            print(f"  WARNING        {success['warning']}")
    print(f"  newest run     {_age(newest, now)}")
    stale = success is None or (now - success["ended_at"]).total_seconds() > max_age * 3600
    if stale:
        print(f"STALE: no successful sync in the last {max_age:g} h")
        return 1
    print(f"OK: the last successful sync is within {max_age:g} h")
    return 0
