"""A virtual clock several processes share through a small mapped file: a simulator and a sync apart."""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .clock import VirtualClock

# The file: now, then the clock's origin, each an int64 of microseconds since the Unix epoch,
# little-endian. Microseconds, not float seconds: a datetime holds exactly that many, so every
# process reads back exactly the time another wrote (a float64 would round them at today's epoch).
LAYOUT = struct.Struct("<qq")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _micros(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() != timedelta(0):
        raise ValueError(f"a SharedClock keeps aware UTC times, not {when!r}")
    return (when - EPOCH) // MICROSECOND


def _datetime(micros: int) -> datetime:
    return EPOCH + micros * MICROSECOND


class SharedClock(VirtualClock):
    """A VirtualClock whose time lives in the file at `path`: every process that opens that path
    reads and moves one clock, so a simulator in its own process (its memory apart from the
    sync's) and a sync run on the same simulated time.

    `SharedClock(path, start)` makes a new clock at `start` (an aware UTC time): it is written
    to a temporary file renamed onto `path`, so no process ever opens a half-written clock, and
    one that opened an earlier clock at `path` keeps that one. `SharedClock(path)` opens the clock
    another process made. Everything else is as VirtualClock: `monotonic()` counts from the
    clock's origin (its start, kept in the file, so all processes agree), `sleep` moves the
    clock for every process, and a move back raises ValueError, also when another process moved
    it past the time asked for first. Moves lock the file (flock) and reads take a shared lock:
    no process sees a half-written time.
    """

    def __init__(self, path: str | os.PathLike[str], start: datetime | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # flock excludes processes, not this process's threads
        if start is not None:
            self._create(start)
        try:
            self._file = open(self.path, "r+b")  # noqa: SIM115 (open for the clock's lifetime)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no shared clock at {self.path}: the process that drives time makes it first, "
                "with SharedClock(path, start=...)") from None
        size = os.fstat(self._file.fileno()).st_size
        if size != LAYOUT.size:
            self._file.close()
            raise ValueError(f"{self.path} is not a shared clock: it holds {size} bytes, a clock "
                             f"{LAYOUT.size}; make one with SharedClock(path, start=...)")
        self._map = mmap.mmap(self._file.fileno(), LAYOUT.size)

    def _create(self, start: datetime) -> None:
        at = _micros(start)
        fd, partial = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(LAYOUT.pack(at, at))
            os.replace(partial, self.path)
        except BaseException:
            os.unlink(partial)
            raise

    def _read(self) -> tuple[int, int]:
        """(now, origin) in microseconds."""
        with self._lock:
            fcntl.flock(self._file, fcntl.LOCK_SH)
            try:
                return LAYOUT.unpack(self._map)
            finally:
                fcntl.flock(self._file, fcntl.LOCK_UN)

    def _move(self, to: Callable[[int], int]) -> datetime:
        """Move the clock to `to(now)`, the file locked from its read to its write."""
        with self._lock:
            fcntl.flock(self._file, fcntl.LOCK_EX)
            try:
                now, origin = LAYOUT.unpack(self._map)
                later = to(now)
                if later < now:
                    raise ValueError(f"a SharedClock never goes backwards: it is at "
                                     f"{_datetime(now).isoformat()}, not going back to "
                                     f"{_datetime(later).isoformat()}")
                LAYOUT.pack_into(self._map, 0, later, origin)
                return _datetime(later)
            finally:
                fcntl.flock(self._file, fcntl.LOCK_UN)

    def now(self) -> datetime:
        return _datetime(self._read()[0])

    def monotonic(self) -> float:
        now, origin = self._read()
        return (now - origin) / 1_000_000

    def sleep(self, seconds: float) -> None:
        if not seconds >= 0:  # NaN too
            raise ValueError(f"cannot sleep {seconds} seconds")
        step = timedelta(seconds=seconds) // MICROSECOND  # rounded as VirtualClock's sleep
        self._move(lambda now: now + step)

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(f"a clock never goes backwards: cannot advance by {delta}")
        return self._move(lambda now: now + delta // MICROSECOND)

    def set(self, when: datetime) -> None:
        at = _micros(when)
        self._move(lambda now: at)

    def close(self) -> None:
        """Unmap and close the file (the clock in it stays for other processes)."""
        with self._lock:
            self._map.close()
            self._file.close()

    def __repr__(self) -> str:
        return f"SharedClock({str(self.path)!r}, {self.now().isoformat()})"
