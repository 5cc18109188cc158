"""The raw tables of a multi-account warehouse, written straight from several worlds' truths.

Model tests with two or more accounts need raw tables laid out as the sync writes them
(`account_id` in zap_runs, zap_runs__steps and zap_runs_sync_log); this writes them through the
destination's SQL client, without the sync, so one truth per account lands as is.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import dlt
import sqlglot

from pipelines.simulator import ManualClock
from pipelines.zap_runs.common.settings import SQL_DIALECTS
from pipelines.zap_runs.warehouse import synclog

from .conftest import small_world

RUNS = ("account_id varchar not null, id varchar not null, zap_id bigint not null, zap_title varchar, "
        "status varchar not null, start_time timestamptz, end_time timestamptz, data_in varchar, "
        "data_out varchar, fetched_at timestamptz not null")
STEPS = ("account_id varchar not null, run_id varchar not null, step_number bigint not null, "
         "zap_id bigint not null, status varchar, start_time timestamptz")
LOG_FIELDS = ("account_id", "sync_id", "started_at", "ended_at", "result", "error")
CHUNK = 300  # rows per INSERT


def colliding_truths(clock: ManualClock, days: float = 9) -> dict[str, dict]:
    """Two accounts whose zap ids and run ids are the same ids: the second world's zaps take the
    first one's ids and its runs the first one's run ids (steps, statuses and times differ)."""
    first = small_world(seed=61, days=days, clock=clock).truth()
    second = small_world(seed=62, days=days, clock=clock).truth()
    zaps = dict(zip(sorted({r["zap_id"] for r in second.values()}),
                    sorted({r["zap_id"] for r in first.values()}), strict=False))
    ids = dict(zip(sorted(second), sorted(first), strict=False))
    second = {ids.get(rid, rid): {**run, "id": ids.get(rid, rid),
                                  "zap_id": zaps.get(run["zap_id"], run["zap_id"])}
              for rid, run in second.items()}
    return {"acme": first, "globex": second}


def error_rate_truths(now: datetime) -> dict[str, dict]:
    """Accounts of one zap each whose error rates over the last 24 h and the 6 days before are
    set (failed of finished): `jumped` 18 of 100 against 6 of 600, `crept` 14 of 200 against 12
    of 1,200, `few` 3 of 10 and nothing before, `steady` a 1 % chance per run of 1,000 runs a day
    (seeded), `steady_noisy` 6 of 400 against 24 of 2,400. Every zap's latest run succeeds, and no
    zap fails in a fifth of its runs or more in 24 h, so that no zap fails now or spikes."""

    def runs(failed: int, total: int, newest: timedelta, oldest: timedelta,
             fails: Callable[[int], bool] | None = None) -> list[tuple[datetime, bool]]:
        """`total` runs spread evenly from now - newest back to now - oldest, `failed` of them
        every total // failed runs but not the newest (or those `fails` picks)."""
        step = (oldest - newest) / total
        every = total // failed if failed else 0
        return [(now - newest - i * step,
                 fails(i) if fails else bool(every) and i % every == every - 1 and i // every < failed)
                for i in range(total)]

    def account(*windows: list[tuple[datetime, bool]]) -> dict:
        out = {}
        for start, failed in (run for window in windows for run in window):
            rid = str(uuid.uuid4())
            out[rid] = {"id": rid, "zap_id": 1, "zap_title": "Leads", "status": "error" if failed else
                        "success", "start_time": start.isoformat(),
                        "end_time": (start + timedelta(seconds=5)).isoformat(),
                        "steps": [{"status": "error" if failed else "success", "start_time": None}],
                        "data_in": None, "data_out": None}
        return out

    day, hour = timedelta(days=1), timedelta(hours=1)
    last_24h, before = (timedelta(minutes=5), day - hour), (day + hour, 7 * day - hour)
    chance = random.Random(7)

    def noise(i: int) -> bool:
        return i > 0 and chance.random() < 0.01

    return {
        "jumped": account(runs(18, 100, *last_24h), runs(6, 600, *before)),
        "crept": account(runs(14, 200, *last_24h), runs(12, 1200, *before)),
        "few": account(runs(3, 10, *last_24h)),
        "steady": account(runs(0, 1000, *last_24h, fails=noise), runs(0, 6000, *before, fails=noise)),
        "steady_noisy": account(runs(6, 400, *last_24h), runs(24, 2400, *before)),
    }


def _time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).astimezone(UTC)


def write_raw_tables(pipeline: dlt.Pipeline, truths: dict[str, dict[str, dict]],
                     sync_log: Iterable[dict] | None = None) -> None:
    """zap_runs and zap_runs__steps holding each account's truth (account -> run id -> API run),
    and, when `sync_log` is given, zap_runs_sync_log with those rows (LOG_FIELDS)."""
    dialect = SQL_DIALECTS[pipeline.destination.destination_name]
    fetched = datetime.now(UTC)
    runs, steps = [], []
    for account, truth in truths.items():
        for run in truth.values():
            runs.append((account, run["id"], int(run["zap_id"]), run["zap_title"], run["status"],
                         _time(run["start_time"]), _time(run["end_time"]), None, None, fetched))
            for number, step in enumerate(run["steps"] or [], start=1):
                steps.append((account, run["id"], number, int(run["zap_id"]), step["status"],
                              _time(step["start_time"])))
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            client.create_dataset()

        def run_sql(sql: str) -> None:
            client.execute_sql(sqlglot.transpile(sql, read="postgres", write=dialect)[0])

        for table, columns, rows in (("zap_runs", RUNS, runs), ("zap_runs__steps", STEPS, steps)):
            qualified = client.make_qualified_table_name(table)
            run_sql(f"create table {qualified} ({columns})")
            _insert(client, qualified, rows)
        if sync_log is not None:
            qualified = client.make_qualified_table_name(synclog.TABLE)
            run_sql(synclog.DDL.format(table=qualified))
            with client.execute_query(f"select * from {qualified} where 1 = 0") as cursor:
                have = {d[0].lower() for d in cursor.description}
            if "account_id" not in have:  # the log's layout before accounts
                run_sql(f"alter table {qualified} add column account_id varchar")
            rows = [tuple(_time(r.get(f)) if f.endswith("_at") else r.get(f) for f in LOG_FIELDS)
                    for r in sync_log]
            _insert(client, qualified, rows, LOG_FIELDS)


def _insert(client, qualified: str, rows: list[tuple], columns: tuple[str, ...] = ()) -> None:
    if not rows:
        return
    names = f" ({', '.join(columns)})" if columns else ""
    marks = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        client.execute_sql(f"insert into {qualified}{names} values {', '.join([marks] * len(chunk))}",
                           *[value for row in chunk for value in row])
