"""The error-rate dashboard: one self-contained HTML file (plotly inlined) built from the marts."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dlt
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .text import pct

NONE = "–"  # a rate with nothing to divide by
TOP_ZAPS = 6  # lines per chart: more is unreadable
TABLE_ROWS = 25

PALETTE = {"succeeded": "#2e7d32", "failed": "#c62828", "handled": "#ef6c00", "halted": "#6a1b9a",
           "filtered": "#90a4ae", "in_progress": "#1565c0", "blocked": "#f9a825",
           "unknown": "#424242"}


@dataclass
class Data:
    """What the page shows, read from the marts."""

    daily: list[dict]
    health: list[dict]
    steps: list[dict]
    durations: list[dict]
    built_at: datetime


def _rows(client, sql: str) -> list[dict]:
    with client.execute_query(sql) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_data(pipeline: dlt.Pipeline) -> Data:
    with pipeline.sql_client() as client:
        def q(name: str) -> str:
            return client.make_qualified_table_name(name)

        return Data(
            daily=_rows(client, f"select * from {q('zap_error_rates_daily')} order by day"),
            health=_rows(client, f"select * from {q('zap_health')} order by is_spiking desc, "
                                 "current_failure_streak desc, error_rate_7d desc nulls last, zap_id"),
            steps=_rows(client, f"select * from {q('zap_step_failures')} where count_runs_failing > 0 "
                                "order by count_runs_failing desc, zap_id, step_number"),
            durations=_rows(client, f"select * from {q('zap_run_durations')} order by day"),
            built_at=datetime.now(UTC),
        )


def _title(zap: dict | None, zap_id: int) -> str:
    title = (zap or {}).get("zap_title") or f"zap {zap_id}"
    return html.escape(title[:60])  # plotly renders some tags in labels: show them as text


def _figure_html(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=340,
                      template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _rate(failed: int, finished: int) -> float | None:
    return failed / finished if finished else None


def charts(data: Data) -> list[tuple[str, str]]:
    """(heading, html) per chart."""
    titles = {z["zap_id"]: z for z in data.health}
    days = sorted({r["day"] for r in data.daily})
    overall = []
    for day in days:
        rows = [r for r in data.daily if r["day"] == day]
        overall.append(_rate(sum(r["count_failed"] for r in rows), sum(r["count_finished"] for r in rows)))
    failures: dict[int, int] = {}
    for r in data.daily:
        failures[r["zap_id"]] = failures.get(r["zap_id"], 0) + r["count_failed"]
    worst = [z for z, n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0])) if n][:TOP_ZAPS]

    rate_fig = go.Figure()
    rate_fig.add_trace(go.Scatter(x=days, y=overall, name="all zaps", line={"width": 4}))
    for zap_id in worst:
        rows = {r["day"]: r["error_rate"] for r in data.daily if r["zap_id"] == zap_id}
        rate_fig.add_trace(go.Scatter(x=days, y=[rows.get(d) for d in days], mode="lines",
                                      name=_title(titles.get(zap_id), zap_id)))
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
        y=[f"{_title(titles.get(s['zap_id']), s['zap_id'])} · step {s['step_number']}"
           for s in top_steps][::-1],
        x=[s["count_runs_failing"] for s in top_steps][::-1], orientation="h",
        marker_color=PALETTE["failed"]))
    steps_fig.update_xaxes(title="failed runs that stopped at this step")

    busiest: dict[int, int] = {}
    for r in data.durations:
        busiest[r["zap_id"]] = busiest.get(r["zap_id"], 0) + r["count_runs"]
    durations_fig = go.Figure()
    for zap_id in [z for z, _ in sorted(busiest.items(), key=lambda kv: (-kv[1], kv[0]))][:TOP_ZAPS]:
        rows = [r for r in data.durations if r["zap_id"] == zap_id]
        durations_fig.add_trace(go.Scatter(x=[r["day"] for r in rows],
                                           y=[float(r["p95_seconds"]) for r in rows], mode="lines",
                                           name=_title(titles.get(zap_id), zap_id)))
    # Delay steps make some runs last days: a log axis keeps the ordinary ones readable.
    durations_fig.update_yaxes(title="p95 duration (s)", type="log")

    return [
        ("Error rate per day: all zaps and the zaps failing most", _figure_html(rate_fig, "chart-rate")),
        ("Status mix per day", _figure_html(mix_fig, "chart-mix")),
        ("Where runs fail: steps with the most failures", _figure_html(steps_fig, "chart-steps")),
        ("Run durations: p95 per day of the busiest zaps",
         _figure_html(durations_fig, "chart-durations")),
    ]


def attention_table(data: Data) -> str:
    rows = [z for z in data.health if z["current_failure_streak"] or z["is_spiking"]
            or (z["error_rate_7d"] or 0) > 0][:TABLE_ROWS]
    if not rows:
        return "<p>No zap failed in the last 7 days.</p>"
    body = "".join(
        f"<tr class='{'spike' if z['is_spiking'] else ''}'><td>{_title(z, z['zap_id'])}</td>"
        f"<td class='num'>{z['zap_id']}</td><td class='num'>{z['current_failure_streak']}</td>"
        f"<td class='num'>{pct(z['error_rate_24h'], NONE)}</td>"
        f"<td class='num'>{pct(z['error_rate_7d'], NONE)}</td>"
        f"<td class='num'>{pct(z['error_rate_30d'], NONE)}</td>"
        f"<td>{'spiking' if z['is_spiking'] else ''}</td>"
        f"<td>{html.escape(str(z['last_success_at'] or 'never'))[:19]}</td></tr>"
        for z in rows)
    return ("<table><thead><tr><th>zap</th><th>id</th><th>failure streak</th><th>24 h</th>"
            "<th>7 d</th><th>30 d</th><th></th><th>last success (UTC)</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def render(data: Data) -> str:
    """The whole page as one string: styles, plotly's JavaScript and the data inlined."""
    runs = sum(r["count_runs"] for r in data.daily)
    failed = sum(r["count_failed"] for r in data.daily)
    finished = sum(r["count_finished"] for r in data.daily)
    failing_now = sum(1 for z in data.health if z["current_failure_streak"] > 0)
    spiking = sum(1 for z in data.health if z["is_spiking"])
    if not data.health:
        content = "<p class='empty'>Nothing synced yet: the warehouse holds no zap runs.</p>"
    else:
        content = (
            "<section class='tiles'>"
            f"<div class='tile'><b>{runs:,}</b><span>runs</span></div>"
            f"<div class='tile'><b>{pct(_rate(failed, finished), NONE)}</b><span>error rate</span></div>"
            f"<div class='tile'><b>{failing_now}</b><span>zaps failing now</span></div>"
            f"<div class='tile'><b>{spiking}</b><span>zaps spiking</span></div>"
            f"<div class='tile'><b>{len(data.health)}</b><span>zaps</span></div></section>"
            f"<h2>Zaps that need attention</h2>{attention_table(data)}"
            + "".join(f"<h2>{heading}</h2>{chart}" for heading, chart in charts(data)))
    return PAGE.format(built=data.built_at.strftime("%Y-%m-%d %H:%M UTC"), content=content,
                       plotly=get_plotlyjs(), marker=json.dumps("zap-runs-report"))


def write_report(pipeline: dlt.Pipeline, path: str | Path) -> Path:
    """Write the dashboard to `path` and return its absolute path."""
    target = Path(path).resolve()
    target.write_text(render(read_data(pipeline)), encoding="utf-8")
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
.empty {{ font-size: 1.2rem; padding: 40px 0; }}
</style>
<script type="text/javascript">{plotly}</script>
</head><body data-report={marker}>
<h1>Zap runs: error rates</h1>
<p class="sub">Built {built} from the zap-runs warehouse. error rate = failed / finished runs.</p>
{content}
</body></html>
"""
