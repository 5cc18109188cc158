"""The dashboard's tables of zaps: the open incidents, and the zaps that need attention."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .cells import NONE, minute, title, when
from .text import pct

if TYPE_CHECKING:
    from .data import Data

TABLE_ROWS = 25


def more(rows: list, shown: int = TABLE_ROWS) -> str:
    """How many rows a table left out, if any."""
    return f"<p>and {len(rows) - shown:,} more.</p>" if len(rows) > shown else ""


def incidents_table(data: Data) -> str:
    """The open incidents (zap_incidents), failing longest first, as the terminal report lists
    them; which rules open and resolve one, when the warehouse says."""
    rules = ""
    if data.incident_rules:
        opens, resolves = data.incident_rules
        rules = (f"<p class='sub'>An incident opens after {_runs(opens, 'failed run')} in a row and "
                 f"resolves after {_runs(resolves, 'run')} in a row that did not fail.</p>")
    if not data.incidents:
        return f"<p id='incidents' class='ok'>No open incidents.</p>{rules}"
    partner = data.is_partner_view
    body = "".join(
        f"<tr><td>{title(i, i['zap_id'])}</td>"
        + (f"<td>{html.escape(i['account_id'][:30])}</td>" if partner else "")
        + f"<td class='num'>{i['zap_id']}</td><td>{minute(i['first_failed_at'])}</td>"
        f"<td>{minute(i['opened_at'])}</td><td>{minute(i['last_failed_at'])}</td>"
        f"<td class='num'>{i['failed_runs']:,}</td>"
        f"<td class='num'>{NONE if i['first_failed_step'] is None else i['first_failed_step']}</td>"
        f"<td>{html.escape(i['first_failed_status'] or NONE)}</td></tr>"
        for i in data.incidents[:TABLE_ROWS])
    return ("<div class='scroll'><table id='incidents'><thead><tr><th>zap</th>"
            + ("<th>account</th>" if partner else "")
            + "<th>id</th><th>failing since (UTC)</th><th>opened (UTC)</th><th>last failure (UTC)</th>"
            "<th>failed runs</th><th>failing step</th><th>status</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>{more(data.incidents)}{rules}")


def _runs(count: int, what: str) -> str:
    return f"{count} {what}{'s' * (count != 1)}"


def attention_table(data: Data) -> str:
    """Zaps failing now, spiking or failing at all in 7 days (zap_health), worst first."""
    rows = [z for z in data.health if z["current_failure_streak"] or z["is_spiking"]
            or (z["error_rate_7d"] or 0) > 0][:TABLE_ROWS]
    if not rows:
        return "<p>No zap failed in the last 7 days.</p>"
    partner = data.is_partner_view
    body = "".join(
        f"<tr class='{'spike' if z['is_spiking'] else ''}'><td>{title(z, z['zap_id'])}</td>"
        + (f"<td>{html.escape(z['account_id'])}</td>" if partner else "")
        + f"<td class='num'>{z['zap_id']}</td><td class='num'>{z['current_failure_streak']}</td>"
        f"<td class='num'>{pct(z['error_rate_24h'], NONE)}</td>"
        f"<td class='num'>{pct(z['error_rate_7d'], NONE)}</td>"
        f"<td class='num'>{pct(z['error_rate_30d'], NONE)}</td>"
        f"<td>{'spiking' if z['is_spiking'] else ''}</td>"
        f"<td>{when(z['last_success_at'])}</td></tr>"
        for z in rows)
    return ("<table><thead><tr><th>zap</th>" + ("<th>account</th>" if partner else "")
            + "<th>id</th><th>failure streak</th><th>24 h</th>"
            "<th>7 d</th><th>30 d</th><th></th><th>last success (UTC)</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")
