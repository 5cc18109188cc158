"""Logging for the command line: one format on stderr, dlt's records too, tracebacks only at DEBUG."""

from __future__ import annotations

import logging
import sys

from ..common.errors import line_of

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TRACEBACK = "Traceback (most recent call last):"

log = logging.getLogger(__name__)


class CurrentStderr:
    """Writes to whatever sys.stderr is now, so a live progress display that redirects it
    (output/progress.py) prints log lines above itself instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _CliHandler(logging.StreamHandler):
    """The handler this module installs on the root logger (and replaces on a second call)."""


class DltRecords(logging.Handler):
    """dlt's own handler, handing its records to the root logger's handlers.

    dlt gives its logger a handler of its own and turns propagation off every time it
    initialises its runtime; it keeps the first handler it finds there, so this one stays.
    Below DEBUG no traceback of dlt's passes. dlt logs a failed load job twice: an error with
    the traceback (`logger.exception`), then a warning that the job is retried, with the
    traceback again inside the message, or the exception that ends the sync in one line. The
    error is left out and the warning cut to one line; so is any other record with a traceback.
    """

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.tracebacks = level <= logging.DEBUG

    def emit(self, record: logging.LogRecord) -> None:
        if not self.tracebacks:
            if record.exc_info and record.levelno >= logging.ERROR:
                return
            if record.exc_info or record.stack_info or TRACEBACK in record.getMessage():
                record = one_line(record)
        logging.getLogger().handle(record)


def one_line(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` in one line: a traceback, attached or inside the message, gives way
    to the first line of its last exception."""
    head, _, trace = record.getMessage().partition(TRACEBACK)
    cause = exception_line(trace) if trace else ""
    if not cause and record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        cause = f"{type(exc).__name__}: {line_of(str(exc))}".rstrip(": ")
    head = line_of(head).rstrip(":")
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg = f"{head}: {cause}" if head and cause else head or cause
    copy.args = copy.exc_info = copy.exc_text = copy.stack_info = None
    return copy


def exception_line(trace: str) -> str:
    """The first line of the last exception in a formatted traceback."""
    for line in trace.rsplit(TRACEBACK, 1)[-1].splitlines():
        if line.strip() and not line.startswith(" "):
            return line.strip()
    return ""


def setup(level: str) -> None:
    """Log at `level` to stderr, dlt's records included; call again to change the level.

    A process that configured the root logger itself keeps its handlers (as with basicConfig).
    """
    numeric = logging.getLevelName(level)
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _CliHandler)]
    for handler in ours:
        root.removeHandler(handler)
    if not root.handlers:
        handler = _CliHandler(CurrentStderr())
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(numeric)
    for chatty in ("httpx", "httpcore"):  # a line or more per request
        logging.getLogger(chatty).setLevel(max(logging.WARNING, numeric))
    dlt_logger = logging.getLogger("dlt")
    for handler in list(dlt_logger.handlers):
        dlt_logger.removeHandler(handler)
    dlt_logger.addHandler(DltRecords(numeric))
    dlt_logger.propagate = False
    global _replaced_hook
    if numeric > logging.DEBUG and sys.excepthook is not printed_exception:
        _replaced_hook, sys.excepthook = sys.excepthook, printed_exception
    elif numeric <= logging.DEBUG and sys.excepthook is printed_exception:
        sys.excepthook = _replaced_hook


_replaced_hook = sys.excepthook


def printed_exception(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    """sys.excepthook below DEBUG: one warning line instead of a traceback.

    The CLI catches what the sync raises; this hook sees what a C extension prints instead of
    raising. psycopg2 does so when a COPY loses its connection (dlt retries the load job).
    """
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    log.warning("%s: %s (--log-level DEBUG shows the traceback)", type(root).__name__,
                line_of(str(root)))
