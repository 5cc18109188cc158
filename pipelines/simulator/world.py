"""The simulated Zapier account: zaps and their runs, evolving with a clock, queried like the API."""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import ManualClock, RealClock
from .content import Zap, add_streaks, hourly_factor, make_zaps
from .lifecycle import Change, Run, make_run


@dataclass(frozen=True)
class Episode:
    """A scripted failing episode: every run of zap number `zap` (its place in World.zaps,
    0 the first made; None: the busiest) triggered from `start` for `hours` fails, as when an
    app is disconnected and then reconnected; failed runs are replayed as any others are."""

    zap: int | None
    start: datetime
    hours: float

    def __post_init__(self) -> None:
        if (self.zap is not None and self.zap < 0) or not 0 < self.hours < math.inf \
                or self.start.tzinfo is None:
            raise ValueError(f"an episode needs a zap number of 0 or more, an aware start and "
                             f"hours above 0, not {self}")


@dataclass
class WorldConfig:
    """The size and habits of the simulated account.

    Every knob's default is the world as it always was: for one seed the default world is the
    same run for run, because a knob at its default draws no random number of its own.
    """

    seed: int = 7
    zaps: int = 25
    runs_per_day: float = 800.0
    history_days: float = 35.0
    retention_days: float = 60.0  # runs older than this disappear, as Zapier purges them
    replay_max_hours: float = 12.0  # manual replays of failed runs happen within this time
    # Share of runs (0..1) that first show a status the contract does not list ("queued",
    # "waiting") and settle as success or error within `unlisted_settle_hours`; 0: none.
    unlisted_open_rate: float = 0.0
    unlisted_settle_hours: float = 6.0
    # About this many runs held by a long Delay step at any time (steady state, on top of
    # runs_per_day): ~delayed_runs / (mean delay in hours) an hour enter `delayed` and as many
    # settle; each waits between delay_min_days and delay_max_days. 0: none.
    delayed_runs: int = 0
    delay_min_days: float = 1.0
    delay_max_days: float = 30.0
    # Shares (0..1) of runs ending in `error` that a user replays by hand (success after):
    # within replay_max_hours, or one to late_replay_max_days days after the failure.
    replay_share: float = 0.2
    late_replay_share: float = 0.0
    late_replay_max_days: float = 3.0
    # Each zap's usual chance of failing is multiplied by this (0..3); a flaky zap's bursts of
    # failures stay as they are.
    error_scale: float = 1.0
    # About this many times a week one of the zaps (picked by its share of the runs) fails every
    # run for 1 to 6 hours, as when an app is disconnected; 0: never.
    streaks_per_week: float = 0.0
    # Scripted failing episodes (Episode): part of the config, so a world rebuilt after eviction
    # has them too.
    episodes: tuple[Episode, ...] = ()

    def __post_init__(self) -> None:
        for name in ("unlisted_open_rate", "replay_share", "late_replay_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        for name in ("retention_days", "unlisted_settle_hours", "delay_min_days", "delay_max_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be above 0, not {getattr(self, name)}")
        if not (0 <= self.delayed_runs < math.inf):
            raise ValueError(f"delayed_runs must be 0 or more, not {self.delayed_runs}")
        if not self.delay_min_days <= self.delay_max_days < math.inf:
            raise ValueError(f"delay_max_days must be at least delay_min_days, not {self.delay_max_days} "
                             f"(delay_min_days is {self.delay_min_days})")
        if self.replay_share + self.late_replay_share > 1.0:
            raise ValueError(f"replay_share plus late_replay_share must be at most 1, not "
                             f"{self.replay_share} + {self.late_replay_share}")
        if not 0.0 <= self.error_scale <= 3.0:
            raise ValueError(f"error_scale must be between 0 and 3 (a flaky zap fails up to 30% of "
                             f"its runs, times this), not {self.error_scale}")
        if not 0.0 <= self.streaks_per_week < math.inf:
            raise ValueError(f"streaks_per_week must be 0 or more, not {self.streaks_per_week}")
        if any(episode.zap is not None and episode.zap >= self.zaps for episode in self.episodes):
            raise ValueError(f"an episode's zap number must be under zaps ({self.zaps})")
        if not 1.0 <= self.late_replay_max_days < math.inf:
            raise ValueError(f"late_replay_max_days must be at least 1 (late replays come a day or more "
                             f"after the failure), not {self.late_replay_max_days}")

    @classmethod
    def profile(cls, name: str, **overrides: object) -> WorldConfig:
        """The config of a named account (PROFILES), with `overrides` winning over its values."""
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}: pick one of {', '.join(PROFILES)}")
        return cls(**{**PROFILES[name], **overrides})


# Named accounts a person or a benchmark asks for (`--profile`, WorldConfig.profile): what each
# sets; every other knob keeps its default.
PROFILES: dict[str, dict[str, float]] = {
    "default": {},
    # 100,000 runs a day: pair it with a few days of history (about 30 s and 1 GB for 3 days).
    "busy": {"runs_per_day": 100_000.0},
    # About 5,000 runs waiting on Delay steps of 1 to 30 days, so ~13 settle every hour; with
    # history_days >= delay_max_days the world starts in that steady state.
    "delay-heavy": {"delayed_runs": 5_000, "delay_min_days": 1.0, "delay_max_days": 30.0},
    # A tenth of failed runs replayed by hand within hours, a fifth one to three days later.
    "replay-heavy": {"replay_share": 0.1, "late_replay_share": 0.2, "late_replay_max_days": 3.0},
}


@dataclass(frozen=True)
class Query:
    """The filters of one GET /v2/zap-runs request, already validated."""

    from_date: datetime | None
    to_date: datetime | None
    zap_id: int | None = None
    statuses: frozenset[str] | None = None
    search: str | None = None
    order: str = "desc"


class World:
    """Runs sorted by trigger time; changes fire from a heap as the clock passes them.

    A world is a function of its config and `built_at`, the instant its history ends (the
    clock's now unless given): every run and every later change of status comes from the seed
    at generation, so a world built as of `built_at` and brought to any later time is the same
    run for run, status for status, as one built then and kept up ever since. That is what
    lets the simulator evict an idle account's world and build it again. A world changed by
    hand (`add`) cannot be rebuilt so: it is `pinned`.
    """

    def __init__(self, config: WorldConfig | None = None,
                 clock: RealClock | ManualClock | None = None, *,
                 built_at: datetime | None = None) -> None:
        self.config = config or WorldConfig()
        self.clock = clock or RealClock()
        self.lock = threading.RLock()
        self._rng = random.Random(self.config.seed)
        now = self.clock.now()
        if built_at is not None and built_at > now:
            raise ValueError(f"a world is built as of now or earlier: {built_at} is after the "
                             f"clock's {now}")
        self.built_at = now if built_at is None else built_at
        self.started_at = self.built_at - timedelta(days=self.config.history_days)
        self.zaps = make_zaps(self._rng, self.config.zaps, self.config.runs_per_day,
                              self.started_at, self.built_at + timedelta(days=365),
                              self.config.error_scale)
        if self.config.streaks_per_week > 0:  # at 0 no number is drawn: the same default world
            add_streaks(self._rng, self.zaps, self.started_at, self.built_at + timedelta(days=365),
                        self.config.streaks_per_week)
        busiest = max(range(len(self.zaps)), key=lambda i: self.zaps[i].runs_per_hour, default=0)
        for episode in self.config.episodes:
            self.zaps[busiest if episode.zap is None else episode.zap].streaks.append(
                (episode.start, episode.start + timedelta(hours=episode.hours)))
        self._delay_zaps = _long_delay_zaps(self.zaps) if self.config.delayed_runs > 0 else []
        self.runs: list[Run] = []
        self._keys: list[float] = []  # occurred_at as epoch seconds, parallel to runs
        self._by_id: dict[str, Run] = {}
        self._changes: list[tuple[float, int, str, Change]] = []
        self._seq = 0
        # Runs generated so far: a run's content is drawn with its number, which must not depend
        # on when purges happened (a rebuilt world purges once, a kept one as it goes).
        self._born = 0
        self._generated_until = self.started_at.replace(minute=0, second=0, microsecond=0)
        self.version = 0
        self._cache: dict = {}
        self.pinned = False
        self.advance_to_clock()

    def pin(self) -> None:
        """Mark the world as changed by hand: the simulator keeps it, never rebuilds it."""
        self.pinned = True

    # --- evolution -------------------------------------------------------------------------
    def advance_to_clock(self) -> None:
        """Bring the world up to the clock's now: new runs, settles, replays, purges."""
        with self.lock:
            now = self.clock.now()
            changed = False
            while self._generated_until <= now:
                self._generate_hour(self._generated_until)
                self._generated_until += timedelta(hours=1)
                changed = True
            cutoff = now.timestamp()
            while self._changes and self._changes[0][0] <= cutoff:
                _, _, run_id, change = heapq.heappop(self._changes)
                run = self._by_id.get(run_id)
                if run is not None:
                    run.status, run.start_time = change.status, change.start_time
                    run.end_time, run.steps, run.cached = change.end_time, change.steps, None
                    changed = True
            oldest = (now - timedelta(days=self.config.retention_days)).timestamp()
            purge = bisect.bisect_left(self._keys, oldest)
            if purge:
                for run in self.runs[:purge]:
                    del self._by_id[run.id]
                del self.runs[:purge]
                del self._keys[:purge]
                changed = True
            if changed:
                self.version += 1
                self._cache.clear()

    def _generate_hour(self, hour: datetime) -> None:
        rng, config = self._rng, self.config
        batch: list[tuple[Run, list[Change]]] = []
        factor = hourly_factor(hour.hour)
        habits = {"replay_share": config.replay_share, "late_replay_share": config.late_replay_share,
                  "late_replay_max_days": config.late_replay_max_days}
        for zap in self.zaps:
            for _ in range(_poisson(rng, zap.runs_per_hour * factor)):
                when = hour + timedelta(seconds=rng.uniform(0, 3600))
                batch.append(make_run(rng, zap, when, self._born + len(batch),
                                      config.replay_max_hours, config.unlisted_open_rate,
                                      config.unlisted_settle_hours, **habits))
        if self._delay_zaps:
            # Little's law: delayed_runs in waiting = arrivals an hour * mean wait in hours. The
            # arrivals keep no daily rhythm, so the count stays level and settles come hourly.
            low, high = config.delay_min_days * 24.0, config.delay_max_days * 24.0
            weights = [zap.runs_per_hour for zap in self._delay_zaps] if config.runs_per_day > 0 else None
            for _ in range(_poisson(rng, config.delayed_runs / ((low + high) / 2.0))):
                zap = rng.choices(self._delay_zaps, weights)[0]
                when = hour + timedelta(seconds=rng.uniform(0, 3600))
                batch.append(make_run(rng, zap, when, self._born + len(batch),
                                      config.replay_max_hours, config.unlisted_open_rate,
                                      config.unlisted_settle_hours, **habits, delay_hours=(low, high)))
        self._born += len(batch)
        batch.sort(key=lambda item: item[0].occurred_at)
        for run, changes in batch:
            self.runs.append(run)
            self._keys.append(run.occurred_at.timestamp())
            self._by_id[run.id] = run
            for change in changes:
                self._seq += 1
                heapq.heappush(self._changes, (change.at.timestamp(), self._seq, run.id, change))

    def add(self, run: Run, changes: list[Change] = ()) -> None:
        """Put a hand-made run (and its later changes) into the world: tests build edge cases.
        The world is pinned from then on (its seed alone no longer makes it)."""
        with self.lock:
            self.pin()
            position = bisect.bisect_right(self._keys, run.occurred_at.timestamp())
            self.runs.insert(position, run)
            self._keys.insert(position, run.occurred_at.timestamp())
            self._by_id[run.id] = run
            for change in changes:
                self._seq += 1
                heapq.heappush(self._changes, (change.at.timestamp(), self._seq, run.id, change))
            self.version += 1
            self._cache.clear()

    # --- reading ---------------------------------------------------------------------------
    def page(self, query: Query, offset: int, limit: int) -> tuple[int, list[Run]]:
        """(count, runs) for one page; unfiltered time-ordered pages are sliced, not copied."""
        with self.lock:
            if query.zap_id is None and query.statuses is None and not query.search \
                    and query.order in ("asc", "desc"):
                lo, hi = self._bounds(query)
                count = hi - lo
                if query.order == "asc":
                    return count, self.runs[lo + offset:min(hi, lo + offset + limit)]
                end = hi - offset
                return count, self.runs[max(lo, end - limit):max(lo, end)][::-1]
            runs = self.visible(query)
            return len(runs), runs[offset:offset + limit]

    def _bounds(self, query: Query) -> tuple[int, int]:
        lo = 0 if query.from_date is None else bisect.bisect_left(
            self._keys, query.from_date.timestamp())
        hi = bisect.bisect_right(self._keys, self.clock.now().timestamp())
        if query.to_date is not None:
            hi = min(hi, bisect.bisect_left(self._keys, query.to_date.timestamp()))
        return lo, max(lo, hi)

    def visible(self, query: Query) -> list[Run]:
        """Runs matching the filters, triggered at or before now, in the requested order."""
        with self.lock:
            # The bounds belong in the key: runs triggered since the last call (the clock moved
            # within an hour already generated, nothing settled) are visible now.
            lo, hi = self._bounds(query)
            key = (self.version, query, lo, hi)
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            runs = self.runs[lo:hi]
            if query.zap_id is not None:
                runs = [r for r in runs if r.zap_id == query.zap_id]
            if query.statuses is not None:
                runs = [r for r in runs if r.status in query.statuses]
            if query.search:
                runs = [r for r in runs if _matches(r, query.search)]
            if query.order == "desc":
                runs.reverse()
            elif query.order == "shuffled":
                runs.sort(key=lambda r: hash((r.id, self.config.seed)))
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = runs
            return runs

    def truth(self, from_date: datetime | None = None,
              to_date: datetime | None = None) -> dict[str, dict]:
        """Ground truth for tests: every run that exists now (in a trigger-time window)."""
        with self.lock:
            self.advance_to_clock()
            runs = self.visible(Query(from_date, to_date, order="asc"))
            return {r.id: r.as_api() for r in runs}

    def run(self, run_id: str) -> Run | None:
        with self.lock:
            return self._by_id.get(run_id)


def _matches(run: Run, search: str) -> bool:
    text = " ".join([run.zap_title or "", json.dumps(run.data_in, ensure_ascii=False),
                     json.dumps(run.data_out, ensure_ascii=False)]).casefold()
    return all(word in text for word in search.casefold().split())


def _long_delay_zaps(zaps: list[Zap]) -> list[Zap]:
    """The zaps whose Delay steps hold the long-delayed runs: those with a Delay step, or else
    the busiest zap with room for one (a trigger, the Delay, an action), which gets one."""
    held = [zap for zap in zaps if zap.delay_step is not None]
    if held:
        return held
    roomy = [zap for zap in zaps if zap.step_count >= 3]
    if not roomy:
        raise ValueError(f"delayed_runs needs a zap with 3 or more steps to hold a Delay step, and "
                         f"the {len(zaps)} zaps of this seed have fewer: ask for more zaps or another seed")
    busiest = max(roomy, key=lambda zap: zap.runs_per_hour)
    busiest.delay_step = 1
    return [busiest]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1
