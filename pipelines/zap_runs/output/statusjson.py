"""`status --json`: the facts `status` prints, as one JSON object for monitors (times as ISO text)."""

from __future__ import annotations

import json
from datetime import datetime

from .freshness import freshness_object
from .lastpass import PassFacts
from .status import Status


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def pass_object(last: PassFacts | None) -> dict | None:
    if last is None:
        return None
    return {
        "started_at": iso(last.started_at), "ended_at": iso(last.ended_at),
        "seconds": None if last.seconds is None else round(last.seconds, 3),
        "result": last.result, "error": last.error,
        "accounts": {"synced": last.accounts["success"], "failed": last.accounts["failed"],
                     "skipped": last.accounts["skipped"], "deferred": last.accounts["deferred"]},
        "bad_entries": len(last.bad_entries),
        "window_from": iso(last.window_from), "window_to": iso(last.window_to),
        "runs_fetched": last.runs_fetched, "runs_new": last.runs_new,
        "runs_updated": last.runs_updated, "open_runs": last.open_runs,
        "requests": last.requests, "retries": last.retries, "rate_limited": last.rate_limited,
        "requests_needed": last.budget,
        "requests_by_purpose": dict(last.spend.by_purpose) if last.spend is not None else None,
        "warnings": last.warnings,
    }


def attention(status: Status) -> list[dict]:
    """Every account that needs attention, and why: failing, stale or no longer synced."""
    return [{"account": a["account_id"], "reason": reason, "last_result": a["result"],
             "error": a["error"], "last_sync_at": iso(a["started_at"]),
             "last_success_at": iso(a["last_success_at"])}
            for reason, accounts in (("failing", status.failing), ("stale", status.stale_accounts),
                                     ("no longer synced", status.gone))
            for a in accounts]


def freshness(status: Status) -> dict:
    """How many accounts are overdue and beyond max_staleness, and each account's freshness
    (output/freshness.py), least fresh first; judged against the newest pass's start."""
    rows = status.shown_freshness
    listed = [freshness_object(f, status.now, status.pass_started_at) for f in rows]
    return {"last_pass_started_at": iso(status.pass_started_at),
            "overdue": sum(1 for f in listed if f["is_overdue"]),
            "beyond_max_staleness": sum(1 for f in listed if f["is_beyond_max_staleness"]),
            "accounts": listed}


def status_json(status: Status, destination: str, dataset: str) -> str:
    """One JSON object: the verdict and exit code first, then the facts behind them."""
    counted = len(status.accounts) if status.account is None else 1
    return json.dumps({
        "verdict": status.verdict, "exit_code": status.exit_code,
        "destination": destination, "dataset": dataset, "account": status.account,
        "checked_at": iso(status.now), "max_age_hours": status.max_age_hours,
        "is_stale": status.stale,
        "last_pass": pass_object(status.last),
        "last_success_at": iso(status.success and status.success["ended_at"]),
        "newest_run_at": iso(status.newest),
        "accounts": {"count": counted, "failing": len(status.failing),
                     "stale": len(status.stale_accounts), "no_longer_synced": len(status.gone)},
        "attention": attention(status),
        "bad_entries": status.bad_entries,
        "freshness": freshness(status),
        "failing_alert_channels": [{"channel": c["channel"], "waiting": c["waiting"],
                                    "failing_since": iso(c["failing_since"]),
                                    "next_attempt_at": iso(c["next_attempt_at"]),
                                    "last_error": c["last_error"]} for c in status.alert_channels],
    }, indent=2, ensure_ascii=False)
