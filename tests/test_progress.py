"""What a sync shows while it runs: a live display on a terminal, plain stage lines elsewhere,
and no traceback of dlt's below --log-level DEBUG."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pty
import re
import subprocess
import sys
import threading
import traceback
import uuid
from datetime import UTC, datetime

import psycopg2
import pytest
from rich.console import Console

from pipelines.zap_runs.api.client import ZapierClient
from pipelines.zap_runs.api.pacing import Pacer
from pipelines.zap_runs.cli import logs
from pipelines.zap_runs.output.progress import LiveDisplay, LogLines

from .warehouse import drop_datasets, postgres_pipeline

SYNC = [sys.executable, "-m", "pipelines.zap_runs"]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


@pytest.fixture
def sync_env(make_simulator, tmp_path) -> dict[str, str]:
    sim = make_simulator()
    return {**os.environ, "SOURCES__ZAP_RUNS__BASE_URL": sim.base_url,
            "SOURCES__ZAP_RUNS__ACCESS_TOKEN": sim.token,
            "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": "0", "COLUMNS": "100"}


@pytest.fixture
def dlt_logging():
    """logs.setup changes process-wide logging: undo it after the test."""
    root, dlt_log = logging.getLogger(), logging.getLogger("dlt")
    hook, level, dlt_handlers = sys.excepthook, root.level, dlt_log.handlers[:]
    yield
    sys.excepthook = hook
    root.setLevel(level)
    dlt_log.handlers[:] = dlt_handlers


def fail_with_cause() -> BaseException:
    try:
        try:
            raise ConnectionError("terminating connection due to administrator command\nCONTEXT: COPY")
        except ConnectionError as exc:
            raise RuntimeError("connection already closed") from exc
    except RuntimeError as exc:
        return exc


@pytest.mark.postgres
def test_a_load_job_retried_until_the_sync_fails_ends_in_one_error_line(sync_env, postgres_dsn,
                                                                          tmp_path):
    """Every load job of the sync is retried (the table is locked; lock_timeout cancels it)
    until dlt gives up: at the default level no traceback, a warning line per retry and the
    one-line error; --log-level DEBUG shows dlt's tracebacks."""
    dataset = f"zr_progress_{uuid.uuid4().hex[:8]}"
    env = {**sync_env, "DESTINATION__POSTGRES__CREDENTIALS":
           postgres_dsn + "?options=-c%20lock_timeout%3D200"}
    cmd = [*SYNC, "--destination", "postgres", "--dataset", dataset]
    run = lambda *extra: subprocess.run([*cmd, *extra], env=env, cwd=tmp_path, capture_output=True,  # noqa: E731
                                        text=True, timeout=240)
    try:
        first = run()
        assert first.returncode == 0, first.stderr[-2000:]
        with contextlib.closing(psycopg2.connect(postgres_dsn)) as holder:
            holder.cursor().execute(f"lock table {dataset}.zap_runs in access exclusive mode")
            failed = run()
            debug = run("--log-level", "DEBUG")
    finally:
        drop_datasets(postgres_pipeline(postgres_dsn, dataset))
    assert failed.returncode == 1, failed.stderr[-2000:]
    lines = failed.stderr.splitlines()
    assert "Traceback" not in failed.stderr, failed.stderr
    assert lines[-1].startswith("error: the load step failed: canceling statement due to lock timeout")
    assert all(LOG_LINE.match(line) for line in lines[:-1]), failed.stderr
    retried = [line for line in lines if "WARNING dlt: Job for" in line and "retried" in line]
    assert retried and all(line.endswith("lock timeout") for line in retried), failed.stderr
    assert debug.returncode == 1
    assert "Traceback (most recent call last):" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("error: the load step failed: ")


def test_the_demo_prints_a_few_plain_stage_lines_on_stderr(demo_run):
    done, _ = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines) and len(lines) <= 8, done.stderr
    said = "\n".join(lines)
    for stage in (r"fetching runs in \d{4}-\d\d-\d\d .* UTC -> ", r"fetched [\d,]+ runs in ",
                  "loading them into the destination", "rebuilding the SQL models"):
        assert re.search(stage, said), done.stderr
    assert "Rate:" not in said and "so far" not in said
    assert "zap-runs sync into duckdb dataset 'zapier': OK" in done.stdout


def test_a_terminal_gets_a_live_display_and_the_summary_after_it(sync_env, tmp_path):
    """stderr a terminal (a pty), stdout a pipe: the display is drawn in place on the terminal,
    the summary goes to stdout as ever."""
    terminal, stderr = pty.openpty()
    proc = subprocess.Popen(SYNC, env=sync_env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    os.close(stderr)
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(terminal, 65536)
            except OSError:  # EIO: the sync closed the terminal
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(terminal)
    screen = b"".join(shown).decode(errors="replace")
    assert proc.returncode == 0, screen[-2000:]
    assert "zap-runs" in screen and "fetching" in screen and "for the rate limit" in screen
    assert "\x1b[1A" in screen and "\x1b[2K" in screen  # redrawn in place
    assert "Rate:" not in screen and "Traceback" not in screen
    assert out.startswith("zap-runs sync into duckdb dataset 'zapier': OK\n") and "  models     " in out


def test_the_live_display_shows_stages_and_counters():
    clock = [0.0]
    pacer = Pacer(60, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(4):
        pacer.wait()
    display = LiveDisplay(io.StringIO())
    client = ZapierClient("http://127.0.0.1:9", "token")
    client.pacer = pacer
    client.stats.requests, client.stats.retries, client.stats.rate_limited = 282, 1, 2
    display.progress.client = client
    display.progress.run_ids.update(str(i) for i in range(28_148))
    display.progress.window_from = datetime(2026, 10, 24, tzinfo=UTC)
    display.progress.window_to = datetime(2026, 11, 28, 17, 12, 49, tzinfo=UTC)
    display.stage("fetching")
    display.stage("loading")
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    console.print(display.render())
    text = console.file.getvalue()
    assert "✓ fetching" in text and "loading 0 s" in text and "models" in text
    assert "2026-10-24 00:00:00 UTC -> 2026-11-28 17:12:49 UTC" in text
    assert "28,148 fetched" in text and "282 (1 retries, 2 rate limited)" in text
    assert "3.0 s for the rate limit" in text  # 3 waits of 60/60 * 1.01 s
    client.close()


def test_pacer_counts_the_wait_under_way():
    clock = [100.0]
    seen = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds / 2
        seen.append(pacer.waited)  # another thread reading it mid-wait
        clock[0] += seconds / 2

    pacer = Pacer(30, clock=lambda: clock[0], sleep=sleep)  # 2.02 s apart
    pacer.wait()
    pacer.wait()
    assert seen == [pytest.approx(1.01)] and pacer.waited == pytest.approx(2.02)
    pacer.hold(5)  # a Retry-After
    pacer.wait()
    assert pacer.waited == pytest.approx(7.02)


def test_plain_lines_say_each_stage_once(caplog):
    display = LogLines()
    display.progress.window_from = datetime(2026, 10, 24, tzinfo=UTC)
    display.progress.window_to = datetime(2026, 11, 28, tzinfo=UTC)
    display.progress.run_ids.update({"a", "b"})
    with caplog.at_level(logging.INFO, logger="pipelines.zap_runs.output.progress"), display:
        display.stage("fetching")
        display.stage("loading")
        display.stage("models")
    said = [r.getMessage() for r in caplog.records if r.name == "pipelines.zap_runs.output.progress"]
    assert said[0] == "fetching runs in 2026-10-24 00:00:00 UTC -> 2026-11-28 00:00:00 UTC"
    assert re.fullmatch(r"fetched 2 runs in \d+\.\d s: 0 requests \(0 retries, 0 rate limited\), "
                        r"0\.0 s waiting for the rate limit", said[1])
    assert len(said) == 4 and said[2] == "loading them into the destination"
    assert said[3].startswith("loaded in ") and said[3].endswith("; rebuilding the SQL models")


def test_plain_lines_tell_how_a_long_fetch_goes(caplog):
    told = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "so far" in record.getMessage():
                told.set()

    watch = Watch()
    logging.getLogger("pipelines.zap_runs.output.progress").addHandler(watch)
    display = LogLines(heartbeat=0.0, poll=0.01)
    display.progress.run_ids.update(str(i) for i in range(1234))
    try:
        with caplog.at_level(logging.INFO, logger="pipelines.zap_runs.output.progress"), display:
            display.stage("fetching")
            assert told.wait(10)
    finally:
        logging.getLogger("pipelines.zap_runs.output.progress").removeHandler(watch)
    assert any(r.getMessage().startswith("fetching: 1,234 runs so far, 0 requests")
               for r in caplog.records)


def test_dlt_tracebacks_are_cut_below_debug(caplog, dlt_logging):
    dlt_log = logging.getLogger("dlt")
    exc = fail_with_cause()
    trace = "".join(traceback.format_exception(exc))
    logs.setup("INFO")
    with caplog.at_level(logging.DEBUG):
        try:
            raise exc
        except RuntimeError:
            dlt_log.exception("Transient exception in job zap_runs.123.parquet")
        dlt_log.warning("Job for zap_runs.123.parquet retried in load 1 with message %s", trace)
        dlt_log.warning("Two lines\nwithout a traceback stay as they are")
    shown = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert shown == [
        ("WARNING", "Job for zap_runs.123.parquet retried in load 1 with message: "
                    "RuntimeError: connection already closed", None),
        ("WARNING", "Two lines\nwithout a traceback stay as they are", None)]
    caplog.clear()
    logs.setup("DEBUG")
    with caplog.at_level(logging.DEBUG):
        try:
            raise exc
        except RuntimeError:
            dlt_log.exception("Transient exception in job zap_runs.123.parquet")
    assert caplog.records[0].exc_info and "Traceback" in caplog.text


def test_an_exception_a_library_prints_is_one_warning_below_debug(caplog, dlt_logging):
    """psycopg2 prints (sys.excepthook) instead of raising when a COPY loses its connection."""
    logs.setup("INFO")
    with caplog.at_level(logging.DEBUG):
        exc = fail_with_cause()
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert [r.getMessage() for r in caplog.records] == [
        "ConnectionError: terminating connection due to administrator command "
        "(--log-level DEBUG shows the traceback)"]
    logs.setup("DEBUG")
    assert sys.excepthook is not logs.printed_exception
