"""`status` for people and monitors: the last sync and success, its window, the newest run."""

from __future__ import annotations

from datetime import datetime

from .text import ago, window_text


def is_stale(success: dict | None, max_age_hours: float, now: datetime) -> bool:
    """Whether the last successful sync (a sync log row) ended longer ago than `max_age_hours`."""
    return success is None or (now - success["ended_at"]).total_seconds() > max_age_hours * 3600


def format_status(where: str, last: dict | None, success: dict | None, newest: datetime | None,
                  max_age_hours: float, now: datetime) -> str:
    """The lines `status` prints, ending in STALE or OK; `last` and `success` are sync log rows."""
    lines = [f"zap-runs status ({where})"]
    if last is not None:
        lines.append(f"  last sync      {ago(last['started_at'], now)}: {last['result']}"
                     + (f" ({last['error']})" if last["error"] else ""))
    lines.append(f"  last success   {ago(success and success['ended_at'], now)}")
    if success is not None:
        lines.append(f"  window         {window_text(success['window_from'], success['window_to'])}")
        lines.append(f"  runs           {success['runs_fetched']} fetched, {success['runs_new']} new, "
                     f"{success['open_runs']} still open")
        if success.get("budget") is not None:
            ratio = success.get("budget_ratio")
            lines.append(f"  requests       {success['requests']} spent, budget B {success['budget']}"
                         f" (what changed), ratio {'n/a' if ratio is None else f'{ratio:.2f}'}")
        if success["warning"]:
            lines.append(f"  WARNING        {success['warning']}")
    lines.append(f"  newest run     {ago(newest, now)}")
    if is_stale(success, max_age_hours, now):
        lines.append(f"STALE: no successful sync in the last {max_age_hours:g} h")
    else:
        lines.append(f"OK: the last successful sync is within {max_age_hours:g} h")
    return "\n".join(lines)


SHOWN = 20  # accounts listed by name; the rest are counted


def gone_accounts(accounts: list[dict], max_age_hours: float) -> list[dict]:
    """Accounts no sync has read for max_age_hours while others were read: removed from the
    configuration (but not forgotten), so they are listed, not counted as failing or stale."""
    if not accounts:
        return []
    latest = max(a["started_at"] for a in accounts)
    return [a for a in accounts
            if (latest - a["started_at"]).total_seconds() > max_age_hours * 3600]


def troubled_accounts(accounts: list[dict], max_age_hours: float, now: datetime
                      ) -> tuple[list[dict], list[dict]]:
    """(failing: the last sync of the account failed or was skipped, stale: no success within
    max_age_hours) among the sync log's accounts (synclog.account_states) still synced."""
    gone = gone_accounts(accounts, max_age_hours)
    accounts = [a for a in accounts if a not in gone]
    failing = [a for a in accounts if a["result"] in ("failed", "skipped")]
    stale = [a for a in accounts if a not in failing and is_stale(
        {"ended_at": a["last_success_at"]} if a["last_success_at"] else None, max_age_hours, now)]
    return failing, stale


def format_accounts(accounts: list[dict], max_age_hours: float, now: datetime) -> list[str]:
    """Lines about the accounts: how many, then each failing or stale one (up to SHOWN)."""
    failing, stale = troubled_accounts(accounts, max_age_hours, now)
    gone = gone_accounts(accounts, max_age_hours)
    ok = len(accounts) - len(failing) - len(stale) - len(gone)
    lines = [f"  accounts       {len(accounts):,}: {ok:,} ok, {len(failing):,} failing, "
             f"{len(stale):,} stale" + (f", {len(gone):,} no longer synced" if gone else "")]
    for account in failing[:SHOWN]:
        lines.append(f"  FAILING        {account['account_id']}: {account['result']} "
                     f"{ago(account['started_at'], now)} ({account['error']}); last success "
                     f"{ago(account['last_success_at'], now)}")
    for account in stale[:max(0, SHOWN - len(failing))]:
        lines.append(f"  STALE          {account['account_id']}: last success "
                     f"{ago(account['last_success_at'], now)}")
    for account in gone[:max(0, SHOWN - len(failing) - len(stale))]:
        lines.append(f"  NOT SYNCED     {account['account_id']}: last read "
                     f"{ago(account['started_at'], now)}; removed from the configuration? "
                     f"`forget --account {account['account_id']}` deletes its data")
    hidden = len(failing) + len(stale) + len(gone) - SHOWN
    if hidden > 0:
        lines.append(f"  ... and {hidden:,} more: see zap_runs_sync_log or the account_health model")
    return lines
