"""The dashboard's charts, drawn as inline SVG and HTML: no script, nothing fetched."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from . import svg
from .cells import day_text, key, label
from .heatmap import heatmap, shown_days

if TYPE_CHECKING:
    from .data import Data

TOP_ZAPS = 6  # lines per chart: more is unreadable
TOP_STEPS = 15
PALETTE = {"succeeded": "#2e7d32", "failed": "#c62828", "handled": "#ef6c00", "halted": "#6a1b9a",
           "filtered": "#90a4ae", "in_progress": "#1565c0", "blocked": "#f9a825",
           "unknown": "#424242"}
LINES = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f")


def status_mix(data: Data, days: list[date]) -> str:
    """Runs per day, stacked by status category; each part's count on hover."""
    index = {day: i for i, day in enumerate(days)}
    counts = [dict.fromkeys(PALETTE, 0) for _ in days]
    for r in data.daily:
        if r["day"] in index:
            for category in PALETTE:
                counts[index[r["day"]]][category] += r[f"count_{category}"]
    ticks = svg.linear_ticks(max((sum(c.values()) for c in counts), default=0))
    y = svg.linear_y(ticks)
    width = svg.band(days)
    bars = []
    for i, (day, per_category) in enumerate(zip(days, counts, strict=True)):
        below = 0
        for category, count in per_category.items():
            if count:
                bars.append(f"<rect x='{svg.coord(svg.LEFT + i * width + width * 0.1)}' "
                            f"y='{svg.coord(y(below + count))}' width='{svg.coord(width * 0.8)}' "
                            f"height='{svg.coord(y(below) - y(below + count))}' fill='{PALETTE[category]}'>"
                            f"<title>{day_text(day)}: {count:,} {category}</title></rect>")
                below += count
    return (svg.frame("runs per day by status", days, [(y(t), f"{t:,g}") for t in ticks],
                      "".join(bars))
            + svg.legend([(colour, category) for category, colour in PALETTE.items()]))


def step_bars(data: Data) -> str:
    """The steps with the most failed runs stopping at them, as bars."""
    top = data.steps[:TOP_STEPS]
    if not top:
        return "<p id='steps'>No run failed at a step.</p>"
    titles = {key(z): z for z in data.health}
    most = max(s["count_runs_failing"] for s in top)
    body = "".join(
        f"<tr><td>{label(titles, key(s), data.is_partner_view)} · step {s['step_number']}</td>"
        f"<td class='num'>{s['count_runs_failing']:,}</td><td class='bar'>"
        f"<i style='width:{100 * s['count_runs_failing'] / most:.1f}%'></i></td></tr>"
        for s in top)
    return ("<table id='steps' class='bars'><thead><tr><th>zap · step</th>"
            "<th>failed runs that stopped at this step</th><th></th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def durations(data: Data, days: list[date]) -> str:
    """p95 run duration per day of the busiest zaps, on a log axis: Delay steps make some runs
    last days, and a log axis keeps the ordinary ones readable."""
    shown = set(days)
    busiest: dict[tuple[str, int], int] = {}
    for r in data.durations:
        busiest[key(r)] = busiest.get(key(r), 0) + r["count_runs"]
    zaps = [zap for zap, _ in sorted(busiest.items(), key=lambda kv: (-kv[1], kv[0]))][:TOP_ZAPS]
    series = {zap: {r["day"]: float(r["p95_seconds"]) for r in data.durations
                    if key(r) == zap and r["day"] in shown and r["p95_seconds"] is not None
                    and float(r["p95_seconds"]) > 0} for zap in zaps}
    values = [v for points in series.values() for v in points.values()]
    if not values:
        return "<p id='durations'>No run finished with a duration yet.</p>"
    ticks = svg.log_ticks(values)
    y = svg.log_y(ticks)
    titles = {key(z): z for z in data.health}
    lines, items = [], []
    for zap, colour in zip(zaps, LINES, strict=False):
        name = label(titles, zap, data.is_partner_view)
        items.append((colour, name))
        stretches, dots = [[]], []  # a day without runs breaks the line
        for i, day in enumerate(days):
            if day not in series[zap]:
                stretches.append([])
                continue
            x, y_ = svg.x_of(days, i), y(series[zap][day])
            stretches[-1].append(f"{svg.coord(x)},{svg.coord(y_)}")
            dots.append(f"<circle cx='{svg.coord(x)}' cy='{svg.coord(y_)}' r='3' fill='{colour}'>"
                        f"<title>{name} · {day_text(day)}: p95 {seconds(series[zap][day])}</title>"
                        "</circle>")
        lines += [f"<polyline class='line' stroke='{colour}' points='{' '.join(points)}'/>"
                  for points in stretches if len(points) > 1]
        lines += dots
    return (svg.frame("p95 run duration per day", days, [(y(v), text) for v, text in ticks],
                      "".join(lines)) + svg.legend(items))


def seconds(value: float) -> str:
    """A duration in words: 850 ms, 12 s, 3.5 min, 2.1 h, 1.5 d."""
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value * 1000:.3g} ms"


def charts(data: Data) -> list[tuple[str, str, str]]:
    """(id, heading, html) per chart."""
    days = shown_days(data.daily)
    span = f"the last {len(days)} days" if days else "no days yet"
    return [
        ("chart-rate", f"Error rate per zap and day, {span}: the zaps failing most",
         heatmap(data, days)),
        ("chart-mix", "Status mix per day", status_mix(data, days)),
        ("chart-steps", "Where runs fail: steps with the most failures", step_bars(data)),
        ("chart-durations", "Run durations: p95 per day of the busiest zaps", durations(data, days)),
    ]
