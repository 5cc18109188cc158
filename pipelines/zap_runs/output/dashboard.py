"""The error-rate dashboard: one self-contained HTML file (plotly inlined) built from the marts.

One account's page (`report --account NAME`), or the partner-wide page: every account's zaps
and, when there are several accounts, the accounts that need attention (account_health), when
each was read and is next due (account_freshness) and the steps failing for several of them
(partner_step_failures). A warehouse of one account reads as
that account's page did before accounts existed."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dlt
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..errors import ConfigError
from .freshness import freshness_table
from .text import pct

NONE = "–"  # a rate with nothing to divide by
TOP_ZAPS = 6  # lines per chart: more is unreadable
TABLE_ROWS = 25
KNOWN_SHOWN = 5  # accounts named when --account names none of them

PALETTE = {"succeeded": "#2e7d32", "failed": "#c62828", "handled": "#ef6c00", "halted": "#6a1b9a",
           "filtered": "#90a4ae", "in_progress": "#1565c0", "blocked": "#f9a825",
           "unknown": "#424242"}


@dataclass
class Data:
    """What the page shows, read from the marts: one account's rows, or every account's."""

    daily: list[dict]
    health: list[dict]
    steps: list[dict]
    durations: list[dict]
    built_at: datetime
    accounts: list[dict] = field(default_factory=list)  # account_health, the page's accounts
    shared_steps: list[dict] = field(default_factory=list)  # partner_step_failures
    freshness: list[dict] = field(default_factory=list)  # account_freshness, the page's accounts
    account: str | None = None  # the account the page is for; None: every account

    @property
    def is_partner_view(self) -> bool:
        """Several accounts on one page: zaps are told apart by their account too."""
        return self.account is None and len(self.accounts) > 1


def _rows(client, sql: str, *args: object) -> list[dict]:
    with client.execute_query(sql, *args) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_data(pipeline: dlt.Pipeline, account: str | None = None,
              configured: set[str] | None = None) -> Data:
    """The marts' rows for `account` (every account when None; of the `configured` accounts
    only, when given: --accounts-file); ConfigError for an account the warehouse does not know."""
    with pipeline.sql_client() as client:
        def select(table: str, order: str, *conditions: str) -> list[dict]:
            if account is not None:
                conditions = (*conditions, "account_id = %s")
            where = f" where {' and '.join(conditions)}" if conditions else ""
            return _rows(client, f"select * from {client.make_qualified_table_name(table)}{where} "
                                 f"order by {order}", *([account] if account is not None else []))

        accounts = _rows(client, f"select * from {client.make_qualified_table_name('account_health')} "
                                 "order by needs_attention desc, account_id")
        if account is not None and account not in {a["account_id"] for a in accounts}:
            raise unknown_account(account, sorted(a["account_id"] for a in accounts))
        if configured:
            accounts = [a for a in accounts if a["account_id"] in configured]
        data = Data(
            daily=select("zap_error_rates_daily", "day"),
            health=select("zap_health", "is_spiking desc, current_failure_streak desc, "
                                        "error_rate_7d desc nulls last, account_id, zap_id"),
            steps=select("zap_step_failures", "count_runs_failing desc, account_id, zap_id, step_number",
                         "count_runs_failing > 0"),
            durations=select("zap_run_durations", "day"),
            built_at=datetime.now(UTC),
            accounts=[a for a in accounts if account is None or a["account_id"] == account],
            # Steps that fail for one account are on the zap table already.
            shared_steps=[] if account is not None else _rows(
                client, f"select * from {client.make_qualified_table_name('partner_step_failures')} "
                        "where count_accounts_affected_7d > 1 order by count_accounts_affected_7d desc, "
                        f"count_runs_failing_7d desc, zap_title, step_number limit {TABLE_ROWS}"),
            account=account,
            freshness=[] if account is not None else _rows(
                client, f"select * from {client.make_qualified_table_name('account_freshness')} "
                        "order by account_id"),
        )
    if configured:  # accounts taken out of the configuration are left out of the page
        for name in ("daily", "health", "steps", "durations", "freshness"):
            setattr(data, name, [r for r in getattr(data, name) if r["account_id"] in configured])
    return data


def unknown_account(account: str, known: list[str]) -> ConfigError:
    """One line: the name was not found, a few it could have been, what to do."""
    if not known:
        return ConfigError(f"no account {account!r}: the warehouse holds no account yet; run a sync first.")
    shown = ", ".join(repr(name) for name in known[:KNOWN_SHOWN])
    more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
    return ConfigError(f"no account {account!r} in the warehouse (known: {shown}{more}); pass one of "
                       "them to --account, or leave --account out for every account.")


def _title(zap: dict | None, zap_id: int) -> str:
    title = (zap or {}).get("zap_title") or f"zap {zap_id}"
    return html.escape(title[:60])  # plotly renders some tags in labels: show them as text


def _key(row: dict) -> tuple[str, int]:
    """A zap's identity: its id is unique only within its account."""
    return row["account_id"], row["zap_id"]


def _label(data: Data, titles: dict, key: tuple[str, int]) -> str:
    """The zap's title; on the partner-wide page with its account, as ids repeat across them."""
    label = _title(titles.get(key), key[1])
    return f"{label} · {html.escape(key[0][:30])}" if data.is_partner_view else label


def _figure_html(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=340,
                      template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _rate(failed: int, finished: int) -> float | None:
    return failed / finished if finished else None


def charts(data: Data) -> list[tuple[str, str]]:
    """(heading, html) per chart."""
    titles = {_key(z): z for z in data.health}
    days = sorted({r["day"] for r in data.daily})
    overall = []
    for day in days:
        rows = [r for r in data.daily if r["day"] == day]
        overall.append(_rate(sum(r["count_failed"] for r in rows), sum(r["count_finished"] for r in rows)))
    failures: dict[tuple[str, int], int] = {}
    for r in data.daily:
        failures[_key(r)] = failures.get(_key(r), 0) + r["count_failed"]
    worst = [z for z, n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])) if n][:TOP_ZAPS]

    rate_fig = go.Figure()
    rate_fig.add_trace(go.Scatter(x=days, y=overall, name="all zaps", line={"width": 4}))
    for key in worst:
        rows = {r["day"]: r["error_rate"] for r in data.daily if _key(r) == key}
        rate_fig.add_trace(go.Scatter(x=days, y=[rows.get(d) for d in days], mode="lines",
                                      name=_label(data, titles, key)))
    rate_fig.update_yaxes(tickformat=".0%", title="error rate")

    mix_fig = go.Figure()
    for category, colour in PALETTE.items():
        per_day = {d: 0 for d in days}
        for r in data.daily:
            per_day[r["day"]] += r[f"count_{category}"]
        mix_fig.add_trace(go.Bar(x=days, y=[per_day[d] for d in days], name=category,
                                 marker_color=colour))
    mix_fig.update_layout(barmode="stack")
    mix_fig.update_yaxes(title="runs per day")

    top_steps = data.steps[:15]
    steps_fig = go.Figure(go.Bar(
        y=[f"{_label(data, titles, _key(s))} · step {s['step_number']}" for s in top_steps][::-1],
        x=[s["count_runs_failing"] for s in top_steps][::-1], orientation="h",
        marker_color=PALETTE["failed"]))
    steps_fig.update_xaxes(title="failed runs that stopped at this step")

    busiest: dict[tuple[str, int], int] = {}
    for r in data.durations:
        busiest[_key(r)] = busiest.get(_key(r), 0) + r["count_runs"]
    durations_fig = go.Figure()
    for key in [z for z, _ in sorted(busiest.items(), key=lambda kv: (-kv[1], kv[0]))][:TOP_ZAPS]:
        rows = [r for r in data.durations if _key(r) == key]
        durations_fig.add_trace(go.Scatter(x=[r["day"] for r in rows],
                                           y=[float(r["p95_seconds"]) for r in rows], mode="lines",
                                           name=_label(data, titles, key)))
    # Delay steps make some runs last days: a log axis keeps the ordinary ones readable.
    durations_fig.update_yaxes(title="p95 duration (s)", type="log")

    return [
        ("Error rate per day: all zaps and the zaps failing most", _figure_html(rate_fig, "chart-rate")),
        ("Status mix per day", _figure_html(mix_fig, "chart-mix")),
        ("Where runs fail: steps with the most failures", _figure_html(steps_fig, "chart-steps")),
        ("Run durations: p95 per day of the busiest zaps",
         _figure_html(durations_fig, "chart-durations")),
    ]


def _when(value: datetime | None, missing: str = "never") -> str:
    return html.escape(str(value or missing))[:19]


def attention_table(data: Data) -> str:
    rows = [z for z in data.health if z["current_failure_streak"] or z["is_spiking"]
            or (z["error_rate_7d"] or 0) > 0][:TABLE_ROWS]
    if not rows:
        return "<p>No zap failed in the last 7 days.</p>"
    partner = data.is_partner_view
    body = "".join(
        f"<tr class='{'spike' if z['is_spiking'] else ''}'><td>{_title(z, z['zap_id'])}</td>"
        + (f"<td>{html.escape(z['account_id'])}</td>" if partner else "")
        + f"<td class='num'>{z['zap_id']}</td><td class='num'>{z['current_failure_streak']}</td>"
        f"<td class='num'>{pct(z['error_rate_24h'], NONE)}</td>"
        f"<td class='num'>{pct(z['error_rate_7d'], NONE)}</td>"
        f"<td class='num'>{pct(z['error_rate_30d'], NONE)}</td>"
        f"<td>{'spiking' if z['is_spiking'] else ''}</td>"
        f"<td>{_when(z['last_success_at'])}</td></tr>"
        for z in rows)
    return ("<table><thead><tr><th>zap</th>" + ("<th>account</th>" if partner else "")
            + "<th>id</th><th>failure streak</th><th>24 h</th>"
            "<th>7 d</th><th>30 d</th><th></th><th>last success (UTC)</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def accounts_table(data: Data) -> str:
    """The accounts that need attention (account_health), worst first: why, and their syncs."""
    rows = [a for a in data.accounts if a["needs_attention"]]
    if not rows:
        return "<p id='accounts'>No account needs attention.</p>"
    body = "".join(
        f"<tr><td>{html.escape(a['account_id'])}</td>"
        f"<td>{html.escape(a['attention_reason'] or '')}</td>"
        f"<td>{html.escape(a['last_sync_result'] or NONE)} {_when(a['last_sync_at'], '')}</td>"
        f"<td>{_when(a['last_success_at'])}</td>"
        f"<td class='num'>{a['count_runs_24h']:,}</td>"
        f"<td class='num'>{pct(a['error_rate_24h'], NONE)}</td>"
        f"<td class='num'>{pct(a['error_rate_7d'], NONE)}</td>"
        f"<td class='num'>{a['count_zaps_failing']}</td><td class='num'>{a['count_zaps_spiking']}</td></tr>"
        for a in rows[:TABLE_ROWS])
    more = f"<p>and {len(rows) - TABLE_ROWS} more.</p>" if len(rows) > TABLE_ROWS else ""
    return ("<table id='accounts'><thead><tr><th>account</th><th>why</th><th>last sync (UTC)</th>"
            "<th>last success (UTC)</th><th>runs 24 h</th><th>24 h</th><th>7 d</th>"
            "<th>zaps failing</th><th>zaps spiking</th></tr></thead>"
            f"<tbody>{body}</tbody></table>{more}")


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


def render(data: Data) -> str:
    """The whole page as one string: styles, plotly's JavaScript and the data inlined."""
    runs = sum(r["count_runs"] for r in data.daily)
    failed = sum(r["count_failed"] for r in data.daily)
    finished = sum(r["count_finished"] for r in data.daily)
    failing_now = sum(1 for z in data.health if z["current_failure_streak"] > 0)
    spiking = sum(1 for z in data.health if z["is_spiking"])
    partner = data.is_partner_view
    scope = ""
    if data.account is not None:
        scope = f"Account {html.escape(data.account)}. "
        reason = data.accounts[0]["attention_reason"] if data.accounts else None
        if reason:
            scope += f"Needs attention: {html.escape(reason)}. "
    elif partner:
        scope = f"All {len(data.accounts)} accounts. "
    accounts = (f"<h2>Accounts that need attention</h2>{accounts_table(data)}"
                "<h2>Freshness: when each account was read, and when it is next due</h2>"
                f"{freshness_table(data.freshness)}" if partner else "")
    if not data.health:
        content = "<p class='empty'>Nothing synced yet: the warehouse holds no zap runs.</p>" + accounts
    else:
        needing = sum(1 for a in data.accounts if a["needs_attention"])
        content = (
            "<section class='tiles'>"
            + (f"<div class='tile'><b>{len(data.accounts)}</b><span>accounts</span></div>"
               f"<div class='tile'><b>{needing}</b><span>accounts need attention</span></div>"
               if partner else "")
            + f"<div class='tile'><b>{runs:,}</b><span>runs</span></div>"
            f"<div class='tile'><b>{pct(_rate(failed, finished), NONE)}</b><span>error rate</span></div>"
            f"<div class='tile'><b>{failing_now}</b><span>zaps failing now</span></div>"
            f"<div class='tile'><b>{spiking}</b><span>zaps spiking</span></div>"
            f"<div class='tile'><b>{len(data.health)}</b><span>zaps</span></div></section>"
            + accounts
            + f"<h2>Zaps that need attention</h2>{attention_table(data)}"
            + (f"<h2>Steps failing for several accounts</h2>{shared_steps_table(data)}"
               if partner else "")
            + "".join(f"<h2>{heading}</h2>{chart}" for heading, chart in charts(data)))
    return PAGE.format(built=data.built_at.strftime("%Y-%m-%d %H:%M UTC"), content=content,
                       plotly=get_plotlyjs(), marker=json.dumps("zap-runs-report"), scope=scope)


def write_report(pipeline: dlt.Pipeline, path: str | Path, account: str | None = None,
                 configured: set[str] | None = None) -> Path:
    """Write the dashboard of `account` (every account when None; of the `configured` ones only,
    when given) to `path`; its absolute path."""
    data = read_data(pipeline, account, configured)
    target = Path(path).resolve()
    target.write_text(render(data), encoding="utf-8")
    return target


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Zap runs: error rates</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px 24px;
       color: #212121; }}
h1 {{ font-size: 1.5rem; margin-bottom: 0; }} h2 {{ font-size: 1.1rem; margin-top: 28px; }}
.sub {{ color: #616161; margin-top: 4px; }}
.tiles {{ display: flex; gap: 12px; flex-wrap: wrap; margin-top: 16px; }}
.tile {{ border: 1px solid #e0e0e0; border-radius: 8px; padding: 10px 16px; min-width: 130px; }}
.tile b {{ display: block; font-size: 1.6rem; }} .tile span {{ color: #616161; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.spike td {{ background: #ffebee; }}
tr.overdue td {{ background: #fff3e0; }}
.empty {{ font-size: 1.2rem; padding: 40px 0; }}
</style>
<script type="text/javascript">{plotly}</script>
</head><body data-report={marker}>
<h1>Zap runs: error rates</h1>
<p class="sub">{scope}Built {built} from the zap-runs warehouse. error rate = failed / finished runs.</p>
{content}
</body></html>
"""
