"""The zap-by-day heatmap of error rates: which zaps fail, on which days, and since when."""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import date, timedelta
from typing import TYPE_CHECKING

from .cells import day_text, key, label, minute
from .text import pct

if TYPE_CHECKING:
    from .data import Data

ROWS = 20  # zaps shown: more is a wall of colour
DAYS = 62  # days shown, the newest: two months
# (highest error rate, class, legend): a day's cell takes the first class whose rate holds it.
BUCKETS = ((0.0, "h0", "no failure"), (0.05, "h1", "up to 5%"), (0.15, "h2", "up to 15%"),
           (0.35, "h3", "up to 35%"), (0.7, "h4", "up to 70%"), (1.0, "h5", "over 70%"))


def shown_days(daily: list[dict]) -> list[date]:
    """Every day from the first of the daily rows to the newest, at most the newest DAYS."""
    if not daily:
        return []
    last = max(r["day"] for r in daily)
    first = max(min(r["day"] for r in daily), last - timedelta(days=DAYS - 1))
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def bucket(failed: int, finished: int) -> str:
    """The cell's class: by error rate; hn where no run finished."""
    if not finished:
        return "hn"
    return next(name for upper, name, _ in BUCKETS if failed / finished <= upper)


def _cell(row: dict | None, day: date) -> str:
    if row is None or not row["count_runs"]:
        return "<td></td>"
    failed, finished = row["count_failed"], row["count_finished"]
    rate = f" ({pct(failed / finished)} of {finished:,} finished)" if finished else ", none finished"
    return (f"<td class='{bucket(failed, finished)}' title='{day_text(day)}: {row['count_runs']:,} "
            f"runs, {failed:,} failed{rate}'></td>")


def _head(days: list[date]) -> str:
    months: list[list] = []
    for day in days:
        if months and months[-1][0] == (day.year, day.month):
            months[-1][1] += 1
        else:
            months.append([(day.year, day.month), 1])
    month_cells = "".join(f"<th colspan='{n}' class='m'>{date(y, m, 1):%b %Y}</th>"
                          for (y, m), n in months)
    return (f"<thead><tr><th rowspan='2' class='zap'>zap</th>{month_cells}</tr>"
            f"<tr>{''.join(f'<th>{d.day}</th>' for d in days)}</tr></thead>")


def heatmap(data: Data, days: list[date]) -> str:
    """One row per zap that failed in `days` (at most ROWS, most failed runs first), a cell per
    day coloured by its error rate, its runs and failures on hover; a badge on zaps with an open
    incident; how many zaps were left out."""
    if not days:
        return "<p id='heatmap'>No runs yet.</p>"
    by_zap: dict[tuple[str, int], dict[date, dict]] = defaultdict(dict)
    for r in data.daily:
        if r["day"] >= days[0]:
            by_zap[key(r)][r["day"]] = r
    failed = {zap: sum(r["count_failed"] for r in rows.values()) for zap, rows in by_zap.items()}
    failing = sorted((zap for zap, n in failed.items() if n), key=lambda zap: (-failed[zap], zap))
    quiet = len(by_zap) - len(failing)
    if not failing:
        return f"<p id='heatmap'>No zap failed in these {len(days)} days.</p>"
    titles = {key(z): z for z in data.health}
    incidents = {key(i): i for i in data.incidents}
    body = []
    for zap in failing[:ROWS]:
        text = label(titles, zap, data.is_partner_view)
        badge = (f"<span class='badge' title='open incident, failing since "
                 f"{minute(incidents[zap]['first_failed_at'])} UTC'>open</span> "
                 if zap in incidents else "")
        cells = "".join(_cell(by_zap[zap].get(day), day) for day in days)
        body.append(f"<tr data-zap='{html.escape(str(zap[1]))}'><th class='zap' title='{text}'>"
                    f"{badge}{text}</th>{cells}</tr>")
    left = len(failing) - ROWS
    note = (f"{min(ROWS, len(failing))} of {len(failing)} zaps that failed in these {len(days)} "
            "days, most failed runs first" + (f"; {left} more not shown" if left > 0 else "")
            + (f"; {quiet} zaps without a failed run left out" if quiet else "") + ".")
    legend = "".join(f"<span><i class='{name}'></i>{text}</span>" for _, name, text in BUCKETS)
    return (f"<p class='sub' id='heatmap-note'>{note}</p><div class='scroll'>"
            f"<table id='heatmap' class='heat'><colgroup><col class='zap'></colgroup>{_head(days)}"
            f"<tbody>{''.join(body)}</tbody></table></div><p class='legend'>{legend}"
            "<span><i class='hn'></i>none finished</span><span><i></i>no runs</span></p>")
