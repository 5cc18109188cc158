"""A pass as `status` tells it: the sync log rows of one sync_id added up (accounts, bad entries apart)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..reading.spend import PURPOSES, Budget, Spend

RESULTS = ("success", "failed", "skipped", "deferred")


@dataclass
class PassFacts:
    """What a pass did. Counts are None where no row knows them: runs new and updated are
    known only for a single account (a pass over many logs them for none of its accounts)."""

    started_at: datetime | None
    ended_at: datetime | None
    many: bool  # several accounts, or bad entries: told account by account
    result: str | None  # of the one row of a single account's pass
    error: str | None
    accounts: dict[str, int]  # result -> accounts (bad entries are no accounts)
    bad_entries: list[str]
    runs_fetched: int | None = None
    runs_new: int | None = None
    runs_updated: int | None = None
    open_runs: int | None = None
    requests: int | None = None
    retries: int | None = None
    rate_limited: int | None = None
    budget: int | None = None  # B of the accounts that succeeded (reading/spend.py)
    window_from: datetime | None = None
    window_to: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    spend: Spend | None = None  # requests by purpose, for --verbose

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


def total(rows: list[dict], column: str, every: bool = False) -> int | None:
    """The column added up over the rows that have it; None when none has it (or, with
    `every`, when any lacks it)."""
    values = [row.get(column) for row in rows]
    known = [v for v in values if v is not None]
    if not known or (every and len(known) < len(values)):
        return None
    return int(sum(known))


def pass_facts(rows: list[dict]) -> PassFacts | None:
    """The pass of these sync log rows (synclog.last_pass, or one account's last row)."""
    if not rows:
        return None
    accounts = [r for r in rows if r["result"] != "invalid"]
    read = [r for r in accounts if r["result"] == "success"]
    started = [r["started_at"] for r in rows if r.get("started_at") is not None]
    ended = [r["ended_at"] for r in rows if r.get("ended_at") is not None]
    many = len(accounts) != 1 or len(rows) > 1
    one = None if many else accounts[0]
    facts = PassFacts(
        started_at=min(started, default=None), ended_at=max(ended, default=None), many=many,
        result=one and one["result"], error=one and one.get("error"),
        accounts={result: sum(1 for r in accounts if r["result"] == result) for result in RESULTS},
        bad_entries=[r.get("error") or "(no message)" for r in rows if r["result"] == "invalid"],
        runs_fetched=total(read, "runs_fetched"), open_runs=total(read, "open_runs"),
        runs_new=total(read, "runs_new", every=True),
        runs_updated=total(read, "runs_updated", every=True),
        requests=total(accounts, "requests"), retries=total(accounts, "retries"),
        rate_limited=total(accounts, "rate_limited"), budget=total(read, "budget"),
        window_to=max((r["window_to"] for r in read if r.get("window_to")), default=None),
        window_from=min((r["window_from"] for r in read if r.get("window_from")), default=None),
    )
    label = (lambda r: f"{r['account_id']}: ") if many else (lambda r: "")
    facts.warnings = [f"{label(r)}{r['warning']}" for r in read if r.get("warning")]
    if facts.budget is not None:
        facts.spend = spend_of(read)
    return facts


def spend_of(rows: list[dict]) -> Spend:
    """The requests by purpose the rows logged (requests_<purpose>, retries, budget) as a Spend."""
    return Spend(by_purpose={p: total(rows, f"requests_{p}") or 0 for p in PURPOSES},
                 retries=total(rows, "retries") or 0,
                 budget=Budget(others=total(rows, "budget") or 0))
