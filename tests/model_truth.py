"""The marts computed again in plain Python from the worlds' truths (independent of the SQL).

Every function takes `truths`: account -> that account's truth (run id -> API run), since run
and zap ids are unique only within an account; keys lead with the account.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction

# The taxonomy as the issue states it, written out here rather than read from sql/seeds.
CATEGORY = {"success": "succeeded", "error": "failed", "error_handled": "handled",
            "halted": "halted", "filtered": "filtered", "skipped": "filtered",
            "delayed": "in_progress", "scheduled": "in_progress", "pending": "in_progress",
            "held": "blocked", "throttled": "blocked"}
FINISHED = {"succeeded", "failed", "handled", "halted"}
CATEGORIES = ["succeeded", "failed", "handled", "halted", "filtered", "in_progress", "blocked",
              "unknown"]
DAY, WEEK = timedelta(days=1), timedelta(days=7)
STALE_AFTER = timedelta(hours=6)
# account_health's error-rate rule, as its grain comment states it.
MIN_FINISHED, MIN_FAILED, HIGH_PERCENT, TIMES_BASELINE, MARGIN_POINTS = 20, 5, 10, 3, 5


def _t(value):
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).astimezone(UTC)


def category(status):
    return CATEGORY.get(status, "unknown")


def runs_of(truths: dict[str, dict]) -> list[dict]:
    return [{**r, "account": account, "start": _t(r["start_time"]), "end": _t(r["end_time"]),
             "category": category(r["status"])}
            for account, truth in truths.items() for r in truth.values()]


def rate(failed, finished):
    return None if finished == 0 else failed / finished


def daily(truths: dict[str, dict]) -> dict:
    out: dict = defaultdict(lambda: {f"count_{c}": 0 for c in CATEGORIES} | {
        "count_runs": 0, "count_finished": 0})
    for run in runs_of(truths):
        if run["start"] is None:
            continue
        row = out[(run["account"], run["zap_id"], run["start"].date())]
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


def durations(truths: dict[str, dict]) -> dict:
    groups: dict = defaultdict(list)
    for run in runs_of(truths):
        if run["category"] in FINISHED and run["start"] and run["end"]:
            groups[(run["account"], run["zap_id"], run["start"].date())].append(
                (run["end"] - run["start"]).total_seconds())
    return {key: {"count_runs": len(v), "p50_seconds": percentile_cont(v, 0.5),
                  "p95_seconds": percentile_cont(v, 0.95), "max_seconds": max(v)}
            for key, v in groups.items()}


def step_failures(truths: dict[str, dict]) -> dict:
    out: dict = defaultdict(lambda: {"count_runs_reaching": 0, "count_runs_failing": 0})
    for run in runs_of(truths):
        for number, step in enumerate(run["steps"] or [], start=1):
            row = out[(run["account"], run["zap_id"], number)]
            row["count_runs_reaching"] += step["status"] is not None
            row["count_runs_failing"] += step["status"] == "error" and run["category"] == "failed"
    totals: dict = defaultdict(int)
    for (account, zap_id, _), row in out.items():
        totals[(account, zap_id)] += row["count_runs_failing"]
    for (account, zap_id, _), row in out.items():
        row["failure_share"] = rate(row["count_runs_failing"], totals[(account, zap_id)])
    return dict(out)


def _title(runs: list[dict], started: list[dict]) -> str | None:
    """The title of the zap's latest started run (the greatest among ties), else any title."""
    latest = [r["zap_title"] for r in started if r["start"] == started[0]["start"]
              and r["zap_title"] is not None] if started else []
    titles = latest or [r["zap_title"] for r in runs if r["zap_title"] is not None]
    return max(titles) if titles else None


def health(truths: dict[str, dict], as_of: datetime) -> dict:
    by_zap: dict = defaultdict(list)
    for run in runs_of(truths):
        by_zap[(run["account"], run["zap_id"])].append(run)
    out = {}
    for key, runs in by_zap.items():
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
            failed = sum(r["category"] == "failed" for r in chosen)
            return failed, rate(failed, sum(r["category"] in FINISHED for r in chosen))

        failed_24h, rate_24h = window(as_of - DAY)
        rate_7d = window(as_of - WEEK)[1]
        out[key] = {
            "zap_title": _title(runs, started),
            "last_run_at": started[0]["start"] if started else None,
            "last_success_at": next((r["start"] for r in started if r["category"] == "succeeded"),
                                    None),
            "current_failure_streak": streak,
            "count_failed_24h": failed_24h,
            "error_rate_24h": rate_24h,
            "error_rate_7d": rate_7d,
            "error_rate_30d": window(as_of - timedelta(days=30))[1],
            "prev_24h": window(as_of - 2 * DAY, as_of - DAY)[1],
            "prev_7d": window(as_of - 2 * WEEK, as_of - WEEK)[1],
            "is_spiking": rate_24h is not None and failed_24h >= 3 and rate_24h >= 0.2
                          and rate_24h >= 2 * (rate_7d or 0),
        }
    return out


def percent(failed: int, finished: int) -> int | None:
    """failed / finished as a whole percent, halves rounded up."""
    return None if finished == 0 else (200 * failed + finished) // (2 * finished)


def is_error_rate_high(failed: int, finished: int, failed_before: int, finished_before: int) -> bool:
    """The last 24 h against the 6 days before them, in exact fractions."""
    if finished < MIN_FINISHED or failed < MIN_FAILED:
        return False
    rate, before = Fraction(failed, finished), None
    if finished_before >= MIN_FINISHED:
        before = Fraction(failed_before, finished_before)
    return rate >= Fraction(HIGH_PERCENT, 100) or (
        before is not None and rate >= TIMES_BASELINE * before
        and rate - before >= Fraction(MARGIN_POINTS, 100))


def account_health(truths: dict[str, dict], sync_log: list[dict], as_of: datetime) -> dict:
    """One row per account with runs or log rows; `sync_log` rows as in raw_tables.LOG_FIELDS."""
    zaps = health(truths, as_of)
    runs = runs_of(truths)
    log = [{**r, "started_at": _t(r["started_at"]), "ended_at": _t(r["ended_at"])}
           for r in sync_log if r["account_id"] is not None]
    out = {}
    for account in {r["account"] for r in runs} | {r["account_id"] for r in log}:
        mine = [r for r in runs if r["account"] == account]
        own_zaps = [z for (a, _), z in zaps.items() if a == account]
        syncs = sorted((r for r in log if r["account_id"] == account),
                       key=lambda r: (r["started_at"], r["ended_at"]), reverse=True)
        successes = [r["ended_at"] for r in syncs if r["result"] == "success"]
        last = syncs[0] if syncs else {}
        last_success = max(successes) if successes else None

        def window(since, until=None, runs=mine):
            chosen = [r for r in runs if r["start"] and r["start"] >= since
                      and (until is None or r["start"] < until)]
            failed = sum(r["category"] == "failed" for r in chosen)
            return len(chosen), failed, sum(r["category"] in FINISHED for r in chosen)

        runs_24h, failed_24h, finished_24h = window(as_of - DAY)
        runs_7d, failed_7d, finished_7d = window(as_of - WEEK)
        _, failed_before, finished_before = window(as_of - WEEK, as_of - DAY)
        high = is_error_rate_high(failed_24h, finished_24h, failed_before, finished_before)
        failing = sum(z["current_failure_streak"] > 0 for z in own_zaps)
        spiking = sum(z["is_spiking"] for z in own_zaps)
        sync_failing = last.get("result") in ("failed", "skipped")
        stale = bool(syncs) and (last_success is None or last_success < as_of - STALE_AFTER)
        reasons = []
        if sync_failing:
            error = last.get("error")
            reasons.append(f"last sync {last['result']}" + (f": {error[:160]}" if error else ""))
        if stale:
            reasons.append("no successful sync yet" if last_success is None
                           else "no successful sync in the last 6 h")
        if high:
            before = percent(failed_before, finished_before)
            reasons.append(f"error rate {percent(failed_24h, finished_24h)}% in 24 h"
                           + (f" ({before}% in the 6 days before)" if before is not None else ""))
        if spiking:
            reasons.append(f"zaps spiking: {spiking}")
        if failing:
            reasons.append(f"zaps failing: {failing}")
        out[account] = {
            "count_zaps": len(own_zaps), "count_runs_24h": runs_24h,
            "count_failed_24h": failed_24h, "error_rate_24h": rate(failed_24h, finished_24h),
            "count_runs_7d": runs_7d, "count_failed_7d": failed_7d,
            "error_rate_7d": rate(failed_7d, finished_7d),
            "count_zaps_failing": failing, "count_zaps_spiking": spiking,
            "last_run_at": max((r["start"] for r in mine if r["start"]), default=None),
            "last_sync_at": last.get("started_at"), "last_sync_result": last.get("result"),
            "last_sync_error": last.get("error"), "last_success_at": last_success,
            "is_sync_failing": sync_failing, "is_stale": stale, "is_error_rate_high": high,
            "needs_attention": bool(sync_failing or stale or high or failing or spiking),
            "attention_reason": "; ".join(reasons) or None,
        }
    return out


def partner_step_failures(truths: dict[str, dict], as_of: datetime) -> dict:
    """Per (zap_title, step_number) with a failure in the last 7 days, across accounts, each zap
    under its current title (health's)."""
    titles = {key: z["zap_title"] for key, z in health(truths, as_of).items()}
    groups: dict = defaultdict(list)
    for run in runs_of(truths):
        title = titles[(run["account"], run["zap_id"])]
        if title is None or run["start"] is None or run["start"] < as_of - WEEK:
            continue
        for number, step in enumerate(run["steps"] or [], start=1):
            failing = step["status"] == "error" and run["category"] == "failed"
            groups[(title, number)].append({
                "account": run["account"], "zap": (run["account"], run["zap_id"]),
                "start": run["start"], "recent": run["start"] >= as_of - DAY,
                "reached": step["status"] is not None, "failing": failing})
    out = {}
    for key, rows in groups.items():
        failing = [r for r in rows if r["failing"]]
        if not failing:
            continue
        reaching = sum(r["reached"] for r in rows)
        out[key] = {
            "count_accounts_affected_24h": len({r["account"] for r in failing if r["recent"]}),
            "count_accounts_affected_7d": len({r["account"] for r in failing}),
            "count_accounts_reaching_7d": len({r["account"] for r in rows if r["reached"]}),
            "count_zaps_affected_7d": len({r["zap"] for r in failing}),
            "count_runs_failing_24h": sum(r["recent"] for r in failing),
            "count_runs_failing_7d": len(failing),
            "count_runs_reaching_7d": reaching,
            "failure_rate_7d": rate(len(failing), reaching),
            "last_failed_at": max(r["start"] for r in failing),
        }
    return out


def incidents(truths: dict[str, dict], open_after: int = 3, resolve_after: int = 2) -> dict:
    """zap_incidents as its header states the rules, by a state machine over each zap's finished
    runs in start order (run id breaks ties): key (account, zap_id, opened_at)."""
    by_zap: dict = defaultdict(list)
    for run in runs_of(truths):
        if run["category"] in FINISHED and run["start"] is not None:
            by_zap[(run["account"], run["zap_id"])].append(run)
    out = {}
    for (account, zap_id), runs in by_zap.items():
        runs.sort(key=lambda r: (r["start"], r["id"]))
        failed_row: list[dict] = []  # the failures in a row so far, incident or not
        ok_row = 0
        incident = None
        for run in runs:
            settled = run["start"]  # the rules count in start order, and times are starts
            if run["category"] == "failed":
                ok_row = 0
                failed_row.append(run)
                if incident is None and len(failed_row) == open_after:
                    first = failed_row[0]
                    errors = [number for number, step in enumerate(first["steps"] or [], 1)
                              if step.get("status") == "error"]
                    incident = {"opened_at": settled, "first_failed_at": first["start"],
                                "failed_runs": len(failed_row), "last_failed_at": run["start"],
                                "first_failed_run_id": first["id"], "zap_title": first["zap_title"],
                                "first_failed_status": first["status"],
                                "first_failed_step": min(errors) if errors else None}
                elif incident is not None:
                    incident["failed_runs"] += 1
                    incident["last_failed_at"] = run["start"]
            else:
                failed_row = []
                ok_row += 1
                if incident is not None and ok_row == resolve_after:
                    out[(account, zap_id, incident["opened_at"])] = {
                        **incident, "resolved_at": settled, "is_open": False}
                    incident = None
        if incident is not None:
            out[(account, zap_id, incident["opened_at"])] = {
                **incident, "resolved_at": None, "is_open": True}
    return out
