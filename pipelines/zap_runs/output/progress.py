"""What a sync shows while it runs: a live display on a terminal, a few log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..accounts.outcomes import SyncProgress
from .text import window_text

log = logging.getLogger(__name__)

# The stages in the order a sync and its models pass them; "starting" covers the lock, the
# destination's state and aborting a load an earlier sync left behind.
STAGES = ("starting", "fetching", "loading", "models")
# Plain output says how fetching goes this often: a paced backfill reads for many minutes.
HEARTBEAT_SECONDS = 60.0


@dataclass
class Counts:
    """The counters of a sync at one moment, read from another thread than the one syncing."""

    runs: int = 0
    rechecks: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited: float = 0.0


class Display:
    """Stages and counters of one sync, shown while it runs; a context manager.

    Hand `progress` and `stage` to `pipeline.logged_sync` (progress=..., on_stage=...) and call
    `stage("models")` before the models are rebuilt. The syncing thread does nothing per page:
    what is shown is read from the counters by a thread of the display.
    """

    def __init__(self) -> None:
        self.progress = SyncProgress()
        self.current = STAGES[0]
        self.started: dict[str, float] = {STAGES[0]: time.monotonic()}
        self.ended: dict[str, float] = {}
        self._lock = threading.Lock()

    def counts(self) -> Counts:
        progress = self.progress
        client = progress.client
        if client is None:
            return Counts(progress.fetched, progress.rechecks_now)
        stats = client.stats
        return Counts(progress.fetched, progress.rechecks_now, stats.requests, stats.retries,
                      stats.rate_limited, client.pacer.waited)

    def stage(self, name: str) -> None:
        """`name` starts now, and the stage before it ends."""
        with self._lock:
            now = time.monotonic()
            self.ended[self.current] = now
            self.current = name
            self.started[name] = now
            self.on_stage(name)

    def took(self, name: str) -> float:
        return self.ended.get(name, time.monotonic()) - self.started.get(name, time.monotonic())

    def on_stage(self, name: str) -> None:
        """What a display does when a stage starts (with its lock held)."""

    def start(self) -> None:
        """Start showing."""

    def stop(self) -> None:
        """Stop showing; the sync has ended or failed."""

    def __enter__(self) -> Display:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def retries_text(counts: Counts) -> str:
    return f"({counts.retries:,} retries, {counts.rate_limited:,} rate limited)"


def requests_text(counts: Counts) -> str:
    return (f"{counts.requests:,} requests {retries_text(counts)}, {counts.waited:.1f} s waiting "
            "for the rate limit")


class LogLines(Display):
    """For cron and CI: a few plain log lines per stage, nothing per page."""

    def __init__(self, heartbeat: float = HEARTBEAT_SECONDS, poll: float = 0.2) -> None:
        super().__init__()
        self.heartbeat, self.poll = heartbeat, poll
        self._window_told = False
        self._told_at = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="zap-runs-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self.poll):
            with self._lock:
                if self.current != "fetching":
                    continue
                self._tell_window()
                if time.monotonic() - self._told_at >= self.heartbeat:
                    counts = self.counts()
                    log.info("fetching: %s runs so far, %s", f"{counts.runs:,}", requests_text(counts))
                    self._told_at = time.monotonic()

    def _tell_window(self) -> None:
        """Once the sync has planned its window (extraction's first step), say which."""
        if self._window_told or self.progress.window_to is None:
            return
        self._window_told = True
        self._told_at = time.monotonic()
        log.info("fetching runs in %s", window_text(self.progress.window_from, self.progress.window_to))

    def on_stage(self, name: str) -> None:
        if name == "fetching":
            self._told_at = time.monotonic()
        elif name == "loading":
            self._tell_window()
            counts = self.counts()
            rechecks = f" ({counts.rechecks:,} re-check windows)" if counts.rechecks else ""
            log.info("fetched %s runs%s in %.1f s: %s", f"{counts.runs:,}", rechecks,
                     self.took("fetching"), requests_text(counts))
            log.info("loading them into the destination")
        elif name == "models":
            log.info("loaded in %.1f s; rebuilding the SQL models", self.took("loading"))


class LiveDisplay(Display):
    """For a terminal: the stages and counters redrawn in place by rich, cleared at the end.

    Log lines and (when stdout is the terminal too) printed lines appear above it.
    """

    def __init__(self, stream: TextIO, refresh_per_second: float = 8) -> None:
        super().__init__()
        self.console = Console(file=stream, highlight=False)
        self.spinner = Spinner("dots", style="cyan")
        self.live = Live(console=self.console, get_renderable=self.render, transient=True,
                         refresh_per_second=refresh_per_second, redirect_stderr=True,
                         redirect_stdout=sys.stdout.isatty())

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def render(self) -> RenderableType:
        with self._lock:
            current = self.current
            stages = Text()
            for name in STAGES:
                if name == STAGES[0] and current != name:
                    continue
                if name in self.ended:
                    stages.append(f"✓ {name} {self.took(name):.1f} s", style="green")
                elif name == current:
                    stages.append(f"{name} {self.took(name):.0f} s", style="bold")
                else:
                    stages.append(name, style="dim")
                stages.append("   ")
        counts = self.counts()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        if self.progress.window_to is not None:
            grid.add_row("window", window_text(self.progress.window_from, self.progress.window_to))
        rechecks = f", {counts.rechecks:,} re-check windows" if counts.rechecks else ""
        grid.add_row("runs", f"{counts.runs:,} fetched{rechecks}")
        grid.add_row("requests", f"{counts.requests:,} {retries_text(counts)}")
        grid.add_row("waiting", f"{counts.waited:.1f} s for the rate limit")
        head = Table.grid(padding=(0, 1))
        head.add_row(self.spinner, Text("zap-runs", style="bold"), stages)
        return Group(head, Padding(grid, (0, 0, 0, 2)))


def display_for(stream: TextIO = sys.stderr) -> Display:
    """A live display when `stream` is a terminal, else plain log lines."""
    return LiveDisplay(stream) if stream.isatty() else LogLines()
