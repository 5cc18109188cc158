"""The partner-wide page's tables of accounts: open incidents first, then why and how fresh."""

from __future__ import annotations

import html
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from ..common.clock import as_utc
from .cells import NONE, when
from .tables import TABLE_ROWS, more
from .text import pct

if TYPE_CHECKING:
    from .data import Data


def open_incidents(data: Data) -> Counter:
    """Open incidents per account."""
    return Counter(i["account_id"] for i in data.incidents)


def _incidents_cell(count: int) -> str:
    return f"<td class='num{' inc' if count else ''}'>{count}</td>"


def accounts_table(data: Data) -> str:
    """The accounts that need attention (account_health): most open incidents first, then as the
    mart orders them (worst first); why, and their syncs."""
    incidents = open_incidents(data)
    rows = sorted((a for a in data.accounts if a["needs_attention"]),
                  key=lambda a: -incidents[a["account_id"]])
    if not rows:
        return "<p id='accounts'>No account needs attention.</p>"
    body = "".join(
        f"<tr><td>{html.escape(a['account_id'])}</td>"
        f"<td>{html.escape(a['attention_reason'] or '')}</td>"
        f"{_incidents_cell(incidents[a['account_id']])}"
        f"<td>{html.escape(a['last_sync_result'] or NONE)} {when(a['last_sync_at'], '')}</td>"
        f"<td>{when(a['last_success_at'])}</td>"
        f"<td class='num'>{a['count_runs_24h']:,}</td>"
        f"<td class='num'>{pct(a['error_rate_24h'], NONE)}</td>"
        f"<td class='num'>{pct(a['error_rate_7d'], NONE)}</td>"
        f"<td class='num'>{a['count_zaps_failing']}</td><td class='num'>{a['count_zaps_spiking']}</td></tr>"
        for a in rows[:TABLE_ROWS])
    return ("<table id='accounts'><thead><tr><th>account</th><th>why</th><th>open incidents</th>"
            "<th>last sync (UTC)</th><th>last success (UTC)</th><th>runs 24 h</th><th>24 h</th>"
            "<th>7 d</th><th>zaps failing</th><th>zaps spiking</th></tr></thead>"
            f"<tbody>{body}</tbody></table>{more(rows)}")


def freshness_order(data: Data) -> list[dict]:
    """account_freshness rows, most open incidents first; then overdue, beyond max_staleness,
    the longest unread (never read first), by name."""
    incidents = open_incidents(data)
    return sorted(data.freshness, key=lambda r: (
        -incidents[r["account_id"]], not r["is_overdue"], not r["is_beyond_max_staleness"],
        -(r["hours_since_read"] if r["hours_since_read"] is not None else float("inf")),
        r["account_id"]))


def freshness_table(data: Data) -> str:
    """Every account with its open incidents, when it was read and when it is next due and why
    (account_freshness), in freshness_order; overdue ones highlighted; at most TABLE_ROWS."""
    if not data.freshness:
        return "<p id='freshness'>No account has been read yet.</p>"
    rows = freshness_order(data)
    incidents = open_incidents(data)
    overdue = sum(1 for r in rows if r["is_overdue"])
    beyond = sum(1 for r in rows if r["is_beyond_max_staleness"])
    with_incidents = sum(1 for r in rows if incidents[r["account_id"]])
    body = "".join(
        f"<tr class='{'overdue' if r['is_overdue'] else ''}'>"
        f"<td>{html.escape(r['account_id'])}</td>{_incidents_cell(incidents[r['account_id']])}"
        f"<td>{_time(r['last_read_at'], 'never')}</td>"
        f"<td class='num'>{_hours(r['hours_since_read'])}</td>"
        f"<td>{_time(r['next_due_at'], 'at once')}</td>"
        f"<td>{html.escape(r['due_reason'] or '')}</td>"
        f"<td>{_flags(r)}</td></tr>"
        for r in rows[:TABLE_ROWS])
    return (f"<p class='sub'>{len(rows)} accounts: {with_incidents} with open incidents, {overdue} "
            f"overdue (due before the last pass, which did not read them), {beyond} beyond "
            "max_staleness.</p>"
            "<table id='freshness'><thead><tr><th>account</th><th>open incidents</th>"
            "<th>last read (UTC)</th><th>hours since</th><th>next due (UTC)</th><th>why</th>"
            f"<th></th></tr></thead><tbody>{body}</tbody></table>{more(rows)}")


def shared_steps_table(data: Data) -> str:
    """Steps failing for more than one account (partner_step_failures), most accounts first."""
    if not data.shared_steps:
        return "<p>No step failed for more than one account in the last 7 days.</p>"
    body = "".join(
        f"<tr><td>{html.escape(s['zap_title'][:60])}</td><td class='num'>{s['step_number']}</td>"
        f"<td class='num'>{s['count_accounts_affected_7d']} of {s['count_accounts_reaching_7d']}</td>"
        f"<td class='num'>{s['count_accounts_affected_24h']}</td>"
        f"<td class='num'>{s['count_runs_failing_7d']:,}</td>"
        f"<td class='num'>{pct(s['failure_rate_7d'], NONE)}</td></tr>"
        for s in data.shared_steps)
    return ("<table id='shared-steps'><thead><tr><th>zap title</th><th>step</th>"
            "<th>accounts failing (7 d)</th><th>24 h</th><th>failed runs (7 d)</th>"
            "<th>failure rate</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _time(value: datetime | None, missing: str) -> str:
    value = as_utc(value)
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else missing


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _flags(row: dict) -> str:
    return ", ".join(flag for flag, on in (("overdue", row["is_overdue"]),
                                           ("beyond max_staleness", row["is_beyond_max_staleness"]))
                     if on)
