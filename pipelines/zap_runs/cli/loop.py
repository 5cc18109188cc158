"""The long-running mode (`--loop`): read the due accounts and load, again and again, so the
warehouse trails the API by minutes; stop cleanly on SIGTERM.

Each round reads for at most `load_every` (the most valuable due accounts first, accounts/schedule.py),
then loads, so a failed run is in the warehouse at most a round after it is read; no account is
read twice within a round. When every due account was read, the loop waits for the next round;
when some were left, it goes on at once. The SQL models are rebuilt every `models_every` (and
after the last load): a rebuild re-reads every run, which costs more than a round's load, and
dashboards read the marts, which lag the raw tables by at most that.

Between rounds the loop holds no lock on a DuckDB file (dlt opens it for the load and closes it),
so dashboards and analysts can open it. SIGTERM or SIGINT stop the loop after the account being
read: what was read is loaded, then it exits 0. A second signal stops at once, as a SIGKILL
would; the next sync aborts that load and reads its runs again (warehouse/recovery.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from ..api.pacing import Pacer
from ..common import clock
from ..common.errors import ConfigError, ZapRunsError, first_line, unwrap
from ..common.settings import DEFAULT_LOAD_EVERY_SECONDS, DEFAULT_MODELS_EVERY_MINUTES
from ..common.sync_config import SyncConfig
from ..warehouse.pipeline import SyncResult, logged_sync

log = logging.getLogger(__name__)

# After a failed round (the destination down, say) the loop waits this many rounds.
FAILED_ROUND_WAIT = 1
# Errors no later round can get past: bad configuration or credentials (2), another sync of
# the pipeline holding its lock (3).
FATAL_EXITS = (2, 3)


class Stop:
    """Set by SIGTERM or SIGINT (or by hand); `wait(seconds)` returns early once it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, name: str = "stop") -> None:
        self.signal = self.signal or name
        self._event.set()

    def wait(self, seconds: float) -> None:
        if seconds <= 0 or self():
            return
        if clock.is_virtual():
            clock.sleep(seconds)  # simulated time: moves the clock, returns at once
        else:
            self._event.wait(seconds)

    @contextmanager
    def on_signals(self) -> Iterator[Stop]:
        """SIGTERM and SIGINT set it while the block runs (from the main thread only); a second
        one raises KeyboardInterrupt there."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(number: int, _frame: object) -> None:
            if self():
                raise KeyboardInterrupt
            name = signal.Signals(number).name
            log.warning("%s: stopping after the account being read; its runs are loaded first "
                        "(send it again to stop at once)", name)
            self.set(name)

        before = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for number, previous in before.items():
                signal.signal(number, previous)


@dataclass
class Totals:
    rounds: int = 0
    loads: int = 0
    accounts: int = 0
    runs: int = 0
    requests: int = 0
    failed_rounds: int = 0
    models: int = 0


def run_loop(pipeline: dlt.Pipeline, config: SyncConfig, *, load_every: float = DEFAULT_LOAD_EVERY_SECONDS,
             models_every: float = DEFAULT_MODELS_EVERY_MINUTES * 60,
             build_models: Callable[[], str] | None = None,
             after_load: Callable[[int], str] | None = None, stop: Stop | None = None,
             after_round: Callable[[SyncResult | None, float], None] | None = None,
             max_rounds: int | None = None, **source_args: object) -> Totals:
    """Rounds of logged_sync until `stop` (or `max_rounds`); `build_models()` rebuilds the
    models; `after_load(runs loaded)` runs after each other round that loaded (the alerts:
    incidents rebuilt alone when runs came, and delivered); `after_round(result, real seconds
    of its load and models)` is told of each round (a benchmark on simulated time moves its
    clock by them)."""
    if not load_every > 0:
        raise ConfigError("--load-every must be a positive number of seconds.")
    stop = stop if stop is not None else Stop()
    totals = Totals()
    # One pacer for every round: a fresh one would send a round's first request at once, one
    # more than the rate allows in the window the last round filled (a 429, a minute lost).
    source_args = {"pacer": Pacer(None), **source_args}
    _arrow_on_system_allocator()
    models_at = clock.monotonic()
    built = True
    # dlt swaps in its own SIGTERM handler while it normalizes and loads, and a signal there
    # would abort the load or be forgotten: ours stays, and the round's load finishes.
    intercepts, pipeline.runtime_config.intercept_signals = \
        pipeline.runtime_config.intercept_signals, False
    with stop.on_signals(), _restored(pipeline, intercepts):
        while not stop() and (max_rounds is None or totals.rounds < max_rounds):
            began = clock.monotonic()
            totals.rounds += 1
            result, seconds = _round(pipeline, config, load_every, stop, totals, source_args)
            real = time.monotonic()
            if result is not None and (result.runs_fetched or result.accounts):
                built = False
            if build_models is not None and not built and (
                    stop() or clock.monotonic() - models_at >= models_every):
                _models(build_models, totals)
                models_at, built = clock.monotonic(), True
            elif after_load is not None and result is not None:
                _models(partial(after_load, result.runs_fetched), None)
            seconds += time.monotonic() - real
            if after_round is not None:
                after_round(result, seconds)
            if result is None:
                stop.wait(load_every * FAILED_ROUND_WAIT)
            elif not _left_due(result):
                stop.wait(began + load_every - clock.monotonic())
        if build_models is not None and not built:
            _models(build_models, totals)
    log.info("loop stopped%s after %d rounds: %d loads, %d account reads, %d runs, %d requests",
             f" on {stop.signal}" if stop.signal else "", totals.rounds, totals.loads,
             totals.accounts, totals.runs, totals.requests)
    return totals


def _round(pipeline: dlt.Pipeline, config: SyncConfig, load_every: float, stop: Stop,
           totals: Totals, source_args: dict) -> tuple[SyncResult | None, float]:
    """One round: (its result, or None when it failed; the real seconds of its load)."""
    try:
        result = logged_sync(pipeline, config, read_budget_minutes=load_every / 60,
                             min_read_interval_seconds=load_every, stop=stop, **source_args)
    except Exception as exc:  # noqa: BLE001 - a round fails alone, unless no round can succeed
        error = unwrap(exc, pipeline.destination.destination_name) \
            if isinstance(exc, PipelineStepFailed) else exc
        if isinstance(error, ZapRunsError) and error.exit_code in FATAL_EXITS:
            raise error from None  # bad configuration or token, or another sync's lock
        totals.failed_rounds += 1
        log.error("round %d failed (the loop goes on; the next round loads what it left): %s",
                  totals.rounds, first_line(error, 300))
        return None, 0.0
    read = [a for a in result.accounts if a.result != "invalid"]
    synced = sum(1 for a in read if a.result == "success") if read else 1  # one account
    totals.loads += 1
    totals.accounts += synced
    totals.runs += result.runs_fetched
    totals.requests += result.requests
    failed = sum(1 for a in read if a.result in ("failed", "skipped"))
    due = f" ({result.due} were due)" if result.due is not None else ""
    log.info("round %d: %d accounts synced%s%s, %d runs, %d requests, loaded in %.1f s",
             totals.rounds, synced, f", {failed} failed or skipped" if failed else "", due,
             result.runs_fetched, result.requests, result.elapsed - result.fetching)
    return result, result.elapsed - result.fetching


@contextmanager
def _restored(pipeline: dlt.Pipeline, intercepts: bool) -> Iterator[None]:
    try:
        yield
    finally:
        pipeline.runtime_config.intercept_signals = intercepts


def _arrow_on_system_allocator() -> None:
    """Arrow (dlt writes DuckDB's loads as parquet) allocates through the system's allocator in
    this process, unless it is configured (ARROW_DEFAULT_MEMORY_POOL) or already loaded. Its
    default pool (mimalloc) keeps what a round freed for reuse and gives little back, even when
    asked: at 10,000 accounts the loop's peak after an hour was 375 MB with it, 335 MB with the
    system's (benchmarks/freshness.py). Arrow reads the variable when it loads, which in the
    command line's process is the first round's."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _left_due(result: SyncResult) -> bool:
    """Whether due accounts were left for the next round (the budget ran out first)."""
    if result.due is None:
        return False
    read = sum(1 for a in result.accounts if a.result not in ("invalid", "deferred"))
    return read < result.due


def _models(build_models: Callable[[], str], totals: Totals | None) -> None:
    try:
        line = build_models()
    except ZapRunsError as exc:
        log.error("%s", exc)
        return
    if totals is not None:
        totals.models += 1
    for text in line.splitlines():  # the models' line, then the alerts' (commands.py)
        if text.strip():
            log.info("%s", first_line(text.strip()))
