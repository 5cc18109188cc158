"""How one simulated run is born and changes: open phases, settling, replays and its steps."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from .content import Zap, make_data

OPEN_STATUSES = ("delayed", "scheduled", "pending", "held", "throttled")
UNLISTED_STATUSES = ("partial", "stopped")  # seen in the wild, absent from the contract; final
# Open states the contract does not list either; with WorldConfig.unlisted_open_rate some runs
# first show one of these, then settle as success or error (see make_run).
UNLISTED_OPEN_STATUSES = ("queued", "waiting")


_UTC_Z = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def iso(when: datetime | None) -> str | None:
    """The API's timestamp format; whole seconds drop the fraction, as some servers do."""
    if when is None:
        return None
    return when.replace(tzinfo=None).isoformat() + "Z"  # isoformat drops a zero fraction


@dataclass(slots=True)  # no per-run __dict__: a busy world holds 100,000s of runs
class Run:
    """One zap run as the API shows it now, plus the hidden time it was triggered at."""

    id: str
    zap_id: int
    zap_title: str | None
    occurred_at: datetime
    status: str
    start_time: datetime | None
    end_time: datetime | None
    steps: list[dict] | None
    data_in: object
    data_out: object
    cached: bytes | None = field(default=None, repr=False)

    def as_api(self) -> dict:
        """The run as the API shows it (a copy, safe to keep)."""
        body = self.payload()
        body["steps"] = None if self.steps is None else [dict(s) for s in self.steps]
        return body

    def encoded(self) -> bytes:
        """The run's JSON, cached until the run changes."""
        if self.cached is None:
            # orjson writes the datetimes itself, in iso()'s exact format, many times faster. Its
            # bytes sit in a buffer about four times their size: a copy keeps only the bytes
            # (1.3 KB a run served instead of 4.7 KB: benchmarks/simulator_accounts.py).
            encoded = orjson.dumps(self.payload(times=lambda when: when), option=_UTC_Z)
            self.cached = bytes(memoryview(encoded))
        return self.cached

    def payload(self, times=None) -> dict:
        times = times or iso
        return {
            "id": self.id,
            "zap_id": self.zap_id,
            "start_time": times(self.start_time),
            "end_time": times(self.end_time),
            "status": self.status,
            "zap_title": self.zap_title,
            "steps": self.steps,
            "data_in": self.data_in,
            "data_out": self.data_out,
        }


@dataclass(slots=True)
class Change:
    """A state a run takes at a given time (a settle, a start, a replay)."""

    at: datetime
    status: str
    start_time: datetime | None
    end_time: datetime | None
    steps: list[dict] | None


def _steps(start: datetime, n: int, failed_at: int | None, fail_status: str,
           offsets: list[float]) -> list[dict]:
    steps = []
    for i in range(n):
        if failed_at is not None and i > failed_at:
            break  # steps after the one that stopped the run never ran
        status = fail_status if i == failed_at else "success"
        steps.append({"status": status, "start_time": iso(start + timedelta(seconds=offsets[i]))})
    return steps


def _ms(when: datetime, rng: random.Random) -> datetime:
    """Millisecond precision, with one in ten on a whole second (the text-sorting trap)."""
    if rng.random() < 0.1:
        return when.replace(microsecond=0)
    return when.replace(microsecond=(when.microsecond // 1000) * 1000)


def make_run(rng: random.Random, zap: Zap, occurred_at: datetime, index: int,
             replay_max_hours: float, unlisted_open_rate: float = 0.0,
             unlisted_settle_hours: float = 6.0, *, replay_share: float = 0.2,
             late_replay_share: float = 0.0, late_replay_max_days: float = 3.0,
             delay_hours: tuple[float, float] | None = None) -> tuple[Run, list[Change]]:
    """A run in its first visible state, and the changes it will go through later.

    A share `unlisted_open_rate` of runs first shows an open status the contract does not list
    (UNLISTED_OPEN_STATUSES) with only its trigger step run, and settles between a quarter of
    `unlisted_settle_hours` and all of it later: as error (steps up to a failing one) when the
    run was to fail, else as success (every step). At 0 no random number is drawn for it, so the
    default world is the same as before the knob existed.

    A run that ends in `error` is replayed by hand (and then succeeds) with chance
    `replay_share` within `replay_max_hours`, or with chance `late_replay_share` one to
    `late_replay_max_days` days after it failed: changes far behind a sync's lookback. Both
    come from the one number drawn for every failed run, so the late share draws nothing more.

    `delay_hours` (low, high): the run is held by its zap's Delay step (the zap must have one)
    for that many hours, shown `delayed`, then settles as success or error. None: the zap's
    usual habits (half the runs of a zap with a Delay step wait hours to a month).
    """
    occurred_at = _ms(occurred_at, rng)
    n = zap.step_count
    offsets = sorted(rng.uniform(0, 2.0) * i for i in range(n))
    duration = rng.lognormvariate(1.0, 1.0) + offsets[-1]
    if rng.random() < 0.02:
        duration += rng.uniform(60, 900)

    # In a streak (an app disconnected) every run fails, no error handler saves it, and no
    # replay succeeds before the streak ends. The same numbers are drawn either way.
    outage = zap.outage_until(occurred_at)
    roll = rng.random()
    fail_at: int | None = None
    if roll < 0.003:
        final = rng.choice(UNLISTED_STATUSES)
    elif roll < 0.003 + zap.error_rate_at(occurred_at):
        final = "error_handled" if rng.random() < 0.15 and outage is None else "error"
        fail_at = rng.randint(1, n - 1)
    elif rng.random() < 0.03:
        final, fail_at = "halted", rng.randint(1, n - 1)
    elif rng.random() < 0.08:
        final, fail_at = "filtered", rng.randint(1, n - 1)
    elif rng.random() < 0.01:
        final = "skipped"
    else:
        final = "success"

    def settled(start: datetime, status: str, failed: int | None, at: datetime) -> Change:
        step_status = status if failed is not None else "success"
        steps = _steps(start, n, failed, step_status, offsets)
        end = max(at, start + timedelta(seconds=duration))
        return Change(at, status, start, _ms(end, rng), steps)

    changes: list[Change] = []
    start: datetime | None = occurred_at
    if delay_hours is not None:
        # A long Delay ("follow up in two weeks"): open for days, then success or error.
        if final != "error":
            final, fail_at = ("error", fail_at) if final == "error_handled" else ("success", None)
        if fail_at is not None:
            fail_at = max(fail_at, zap.delay_step + 1)  # the step that fails ran after the Delay
        first = _held_by_delay(zap, occurred_at, offsets)
        changes.append(settled(occurred_at, final, fail_at,
                               occurred_at + timedelta(hours=rng.uniform(*delay_hours))))
    elif unlisted_open_rate > 0 and rng.random() < unlisted_open_rate:
        # An open state Zapier never documented: a client must not take it for final.
        first = Change(occurred_at, rng.choice(UNLISTED_OPEN_STATUSES), occurred_at, None,
                       [{"status": "success", "start_time": iso(occurred_at)}])
        failed = final in ("error", "error_handled")
        done = occurred_at + timedelta(hours=rng.uniform(0.25, 1.0) * unlisted_settle_hours)
        changes.append(settled(occurred_at, "error" if failed else "success",
                               fail_at if failed else None, done))
    elif rng.random() < 0.01:  # queued, not started yet: no start_time, no steps
        start = _ms(occurred_at + timedelta(minutes=rng.uniform(1, 45)), rng)
        first = Change(occurred_at, "pending", None, None, None)
        changes.append(settled(start, final, fail_at, start))
    elif zap.delay_step is not None and final in ("success", "error") and rng.random() < 0.5:
        first = _held_by_delay(zap, occurred_at, offsets)
        roll = rng.random()  # most Delays are hours, some days, a few up to a month
        hours = rng.uniform(1, 24) if roll < 0.7 else rng.uniform(24, 168) if roll < 0.95 \
            else rng.uniform(168, 720)
        resume = occurred_at + timedelta(hours=hours)
        changes.append(settled(occurred_at, final, fail_at, resume))
    elif final == "error" and rng.random() < 0.5:
        # Autoreplay: the run shows `scheduled` while Zapier retries it (up to ~10.5 h).
        first = Change(occurred_at, "scheduled", occurred_at, None,
                       _steps(occurred_at, n, fail_at, "error", offsets))
        done = occurred_at + timedelta(minutes=rng.uniform(5, 630))
        if rng.random() < 0.6 and (outage is None or done >= outage):
            changes.append(settled(occurred_at, "success", None, done))
        else:
            changes.append(settled(occurred_at, "error", fail_at, done))
    else:
        open_roll = rng.random()
        if open_roll < 0.015:
            # Held (flood protection, task limit, a disconnected app): not started at all yet.
            start = _ms(occurred_at + timedelta(hours=rng.uniform(1, 48)), rng)
            first = Change(occurred_at, "held", None, None, None)
            changes.append(settled(start, final, fail_at, start))
        elif open_roll < 0.045:
            wait = timedelta(minutes=rng.uniform(1, 120)) if open_roll < 0.025 else \
                timedelta(seconds=rng.uniform(10, 1800))
            status = "throttled" if open_roll < 0.025 else "pending"
            first = Change(occurred_at, status, occurred_at, None,
                           [{"status": "success", "start_time": iso(occurred_at)}]
                           + [{"status": None, "start_time": None} for _ in range(n - 1)])
            changes.append(settled(occurred_at, final, fail_at, occurred_at + wait))
        else:
            first = settled(occurred_at, final, fail_at, occurred_at)

    last = changes[-1] if changes else first
    if last.status == "error":
        # A user replays the failed run by hand, soon or days later; it then succeeds.
        roll, at = rng.random(), None
        if roll < replay_share and replay_max_hours > 0:
            at = last.at + timedelta(hours=rng.uniform(0.1, replay_max_hours))
        elif late_replay_share > 0 and replay_share <= roll < replay_share + late_replay_share:
            at = last.at + timedelta(days=rng.uniform(1.0, late_replay_max_days))
        if at is not None:
            at = at if outage is None else max(at, outage)  # replayed once it is reconnected
            changes.append(Change(at, "success", last.start_time, _ms(at, rng),
                                  _steps(last.start_time or occurred_at, n, None, "success", offsets)))

    run = Run(
        id=_uuid(rng), zap_id=zap.id, zap_title=zap.title, occurred_at=occurred_at,
        status=first.status, start_time=first.start_time, end_time=first.end_time,
        steps=first.steps, data_in=make_data(rng, index), data_out=make_data(rng, index + 1),
    )
    return run, changes


def _held_by_delay(zap: Zap, occurred_at: datetime, offsets: list[float]) -> Change:
    """A Delay step holds the run; steps after it show `filtered` until it resumes."""
    held = [{"status": "success" if i <= zap.delay_step else "filtered",
             "start_time": iso(occurred_at + timedelta(seconds=offsets[i]))
             if i <= zap.delay_step else None} for i in range(zap.step_count)]
    return Change(occurred_at, "delayed", occurred_at, None, held)


def _uuid(rng: random.Random) -> str:
    value = rng.getrandbits(128)
    value = (value & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    value = (value & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
