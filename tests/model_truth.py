"""The marts computed again in plain Python from the world's truth (independent of the SQL)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

# The taxonomy as the issue states it, written out here rather than read from sql/seeds.
CATEGORY = {"success": "succeeded", "error": "failed", "error_handled": "handled",
            "halted": "halted", "filtered": "filtered", "skipped": "filtered",
            "delayed": "in_progress", "scheduled": "in_progress", "pending": "in_progress",
            "held": "blocked", "throttled": "blocked"}
FINISHED = {"succeeded", "failed", "handled", "halted"}
CATEGORIES = ["succeeded", "failed", "handled", "halted", "filtered", "in_progress", "blocked",
              "unknown"]


def _t(value):
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def category(status):
    return CATEGORY.get(status, "unknown")


def runs_of(truth: dict) -> list[dict]:
    return [{**r, "start": _t(r["start_time"]), "end": _t(r["end_time"]),
             "category": category(r["status"])} for r in truth.values()]


def rate(failed, finished):
    return None if finished == 0 else failed / finished


def daily(truth: dict) -> dict:
    out: dict = defaultdict(lambda: {f"count_{c}": 0 for c in CATEGORIES} | {
        "count_runs": 0, "count_finished": 0})
    for run in runs_of(truth):
        if run["start"] is None:
            continue
        row = out[(run["zap_id"], run["start"].date())]
        row["count_runs"] += 1
        row["count_finished"] += run["category"] in FINISHED
        row[f"count_{run['category']}"] += 1
    for row in out.values():
        row["error_rate"] = rate(row["count_failed"], row["count_finished"])
    return dict(out)


def percentile_cont(values: list[float], p: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * p
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def durations(truth: dict) -> dict:
    groups: dict = defaultdict(list)
    for run in runs_of(truth):
        if run["category"] in FINISHED and run["start"] and run["end"]:
            groups[(run["zap_id"], run["start"].date())].append(
                (run["end"] - run["start"]).total_seconds())
    return {key: {"count_runs": len(v), "p50_seconds": percentile_cont(v, 0.5),
                  "p95_seconds": percentile_cont(v, 0.95), "max_seconds": max(v)}
            for key, v in groups.items()}


def step_failures(truth: dict) -> dict:
    out: dict = defaultdict(lambda: {"count_runs_reaching": 0, "count_runs_failing": 0})
    for run in runs_of(truth):
        for number, step in enumerate(run["steps"] or [], start=1):
            row = out[(run["zap_id"], number)]
            row["count_runs_reaching"] += step["status"] is not None
            row["count_runs_failing"] += step["status"] == "error" and run["category"] == "failed"
    totals: dict = defaultdict(int)
    for (zap_id, _), row in out.items():
        totals[zap_id] += row["count_runs_failing"]
    for (zap_id, _), row in out.items():
        row["failure_share"] = rate(row["count_runs_failing"], totals[zap_id])
    return dict(out)


def health(truth: dict, as_of: datetime) -> dict:
    by_zap: dict = defaultdict(list)
    for run in runs_of(truth):
        by_zap[run["zap_id"]].append(run)
    out = {}
    for zap_id, runs in by_zap.items():
        started = sorted((r for r in runs if r["start"]), key=lambda r: r["start"], reverse=True)
        streak = 0
        for run in started:
            if run["category"] == "failed":
                streak += 1
            elif run["category"] in FINISHED:
                break

        def window(start, end=None, runs=runs):
            chosen = [r for r in runs if r["start"] and r["start"] >= start
                      and (end is None or r["start"] < end)]
            return rate(sum(r["category"] == "failed" for r in chosen),
                        sum(r["category"] in FINISHED for r in chosen))

        day, week = timedelta(days=1), timedelta(days=7)
        out[zap_id] = {
            "last_run_at": started[0]["start"] if started else None,
            "last_success_at": next((r["start"] for r in started if r["category"] == "succeeded"),
                                    None),
            "current_failure_streak": streak,
            "error_rate_24h": window(as_of - day),
            "error_rate_7d": window(as_of - week),
            "error_rate_30d": window(as_of - timedelta(days=30)),
            "prev_24h": window(as_of - 2 * day, as_of - day),
            "prev_7d": window(as_of - 2 * week, as_of - week),
        }
    return out
