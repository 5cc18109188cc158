"""Inline SVG for the dashboard's charts over days: the frame, the axes, the scales."""

from __future__ import annotations

import html
import math
from datetime import date

WIDTH, HEIGHT = 1000, 260  # the viewBox: the chart scales to the page's width
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 10, 26
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
X_LABELS = 10  # at most, so they never overlap
# Ticks of a log axis of seconds, in words: a decade or so apart.
LOG_TICKS = ((0.01, "10 ms"), (0.1, "100 ms"), (1, "1 s"), (10, "10 s"), (60, "1 min"),
             (600, "10 min"), (3600, "1 h"), (86_400, "1 d"), (864_000, "10 d"), (8_640_000, "100 d"))


def coord(value: float) -> str:
    """A coordinate: one decimal is finer than a pixel."""
    return f"{value:.1f}".removesuffix(".0")


def band(days: list[date]) -> float:
    """The width of one day on the x axis."""
    return (WIDTH - LEFT - RIGHT) / max(len(days), 1)


def x_of(days: list[date], index: int) -> float:
    """The middle of day `index`."""
    return LEFT + (index + 0.5) * band(days)


def linear_ticks(top: float, count: int = 4) -> list[float]:
    """Round ticks from 0 to at least `top` (1 when there is nothing)."""
    top = max(top, 1)
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(math.ceil(top / step - 1e-9) + 1)]


def linear_y(ticks: list[float]):
    """value -> y for a linear axis from 0 to the last tick."""
    return lambda value: TOP + (1 - value / ticks[-1]) * PLOT_HEIGHT


def log_ticks(values: list[float]) -> list[tuple[float, str]]:
    """The LOG_TICKS that bracket `values` (all above 0); two at least."""
    low, high = min(values), max(values)
    below = [t for t in LOG_TICKS if t[0] <= low] or [LOG_TICKS[0]]
    above = [t for t in LOG_TICKS if t[0] >= high] or [LOG_TICKS[-1]]
    first, last = LOG_TICKS.index(below[-1]), LOG_TICKS.index(above[0])
    return list(LOG_TICKS[first:max(last, first + 1) + 1])


def log_y(ticks: list[tuple[float, str]]):
    """value -> y for a log axis spanning `ticks`; values beyond them stay at the edges."""
    low, high = math.log(ticks[0][0]), math.log(ticks[-1][0])

    def y(value: float) -> float:
        share = (math.log(value) - low) / (high - low)
        return TOP + (1 - min(max(share, 0.0), 1.0)) * PLOT_HEIGHT
    return y


def frame(name: str, days: list[date], y_ticks: list[tuple[float, str]], body: str) -> str:
    """The SVG: grid lines at the y ticks ((y, text)), some days labelled below, then `body`."""
    grid = "".join(f"<path class='grid' d='M{LEFT} {coord(y)}H{WIDTH - RIGHT}'/>"
                   f"<text class='yl' x='{LEFT - 6}' y='{coord(y + 4)}'>{text}</text>"
                   for y, text in y_ticks)
    every = max(1, math.ceil(len(days) / X_LABELS))
    x_labels = "".join(f"<text class='xl' x='{coord(x_of(days, i))}' y='{HEIGHT - 8}'>{day:%b %d}</text>"
                       for i, day in enumerate(days) if (len(days) - 1 - i) % every == 0)
    return (f"<svg class='plot' viewBox='0 0 {WIDTH} {HEIGHT}' role='img' "
            f"aria-label='{html.escape(name)}'>{grid}{x_labels}{body}</svg>")


def legend(items: list[tuple[str, str]]) -> str:
    """(colour, escaped text) as swatches under a chart."""
    return "<p class='legend'>" + "".join(
        f"<span><i style='background:{colour}'></i>{text}</span>" for colour, text in items) + "</p>"
