"""The partner's accounts: one World per access token, built on first use, evicted when idle, and
seeded mixes of them."""

from __future__ import annotations

import math
import random
import threading
from datetime import datetime

from .auth import DEFAULT_ACCOUNT
from .clock import ManualClock, RealClock
from .eviction import WorldLRU
from .world import World, WorldConfig

__all__ = ["DEFAULT_ACCOUNT", "MIXES", "Account", "account_mix", "expected_runs", "heavy_mix",
           "heavy_tiers", "kind_of", "make_mix", "tier_of"]

# The mix (account_mix): shares of accounts by size; the rest are quiet.
BUSY_SHARE = 0.01
DEFAULT_SHARE = 0.06
QUIET_RUNS_PER_DAY = (2.0, 50.0)  # log-uniform: most quiet accounts run a handful a day
QUIET_ZAPS = (1, 5)
BUSY_RUNS_PER_DAY = (2_000.0, 5_000.0)
BUSY_ZAPS = (25, 60)
# What the mix draws for each account; the rest of WorldConfig is the caller's (overrides).
DRAWN = frozenset({"seed", "zaps", "runs_per_day"})
# A week of history, not WorldConfig's 35 days: 1,000 accounts then hold about 670,000 runs
# (2.2 GB at peak, 35 s to build: benchmarks/simulator_accounts.py) and their backfills fit a
# benchmark.
MIX_HISTORY_DAYS = 7.0

# The heavy-tailed mix (heavy_mix): a partner's users as issue 18 describes them. Each tier: its
# share of the accounts (the busiest first), its share of all runs, the zaps an account has.
HEAVY_TIERS = (("top", 0.01, 0.50, (10, 40)), ("middle", 0.09, 0.40, (2, 10)),
               ("rest", 0.90, 0.10, (1, 3)))
HEAVY_RUNS_PER_ACCOUNT = 20.0  # a day, on average: 200,000 runs a day at 10,000 accounts
# A day of history, not a week: 10,000 accounts then hold about 200,000 runs (0.8 GB all built),
# and the busiest 1% (half of them) stay built within the default memory bound while the sync
# reads them every few minutes.
HEAVY_HISTORY_DAYS = 1.0
# Within a tier, runs a day are log-uniform over a range this many times wide, then scaled so
# that the tier makes its share exactly: the tiers do not overlap.
HEAVY_SPREAD = 6.0
# Every zap's usual chance of failing, scaled so that about 3% of all runs end in `error`, the
# flaky zaps' bursts and the streaks below included: tests/test_simulator_mix.py measures it.
HEAVY_ERROR_SCALE = 0.68
# About once a week an account's zap fails every run for 1 to 6 hours (streaks_per_week).
HEAVY_STREAKS_PER_WEEK = 1.0


class Account:
    """One account of the partner: a name, its World (built when first needed) and its token.

    A world is built on its account's first request (or first read of `.world`), as of the
    clock's time then (`built_at`, remembered): a thousand accounts cost nothing until they are
    asked for. Given a WorldLRU, an idle world may be evicted (`evict`) and is built again on the
    next request, as of the same `built_at`, then brought to the clock's now: the same runs and
    statuses as if it had been kept. A world handed in as a World, or changed by hand
    (`World.add`), is pinned: never evicted. Tokens and revocations live in the simulator's
    TokenStore, not in the world: eviction leaves them as they are.
    """

    def __init__(self, name: str, config: WorldConfig, clock: RealClock | ManualClock,
                 token: str, scopes: tuple[str, ...], world: World | None = None, *,
                 lru: WorldLRU | None = None) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.token = token  # an access token that never expires (until revoked)
        self.scopes = scopes
        self._world = world
        self._pinned = world is not None  # how a World handed in came to be is not known here
        self.built_at: datetime | None = None if world is None else world.built_at
        self.builds = 0  # worlds built here: 1 on first use, one more after each eviction
        self._lru = lru
        self._lock = threading.Lock()

    @property
    def world(self) -> World:
        world = self._world
        if world is None:
            with self._lock:
                world = self._world
                if world is None:
                    if self.built_at is None:
                        self.built_at = self.clock.now()
                    world = self._world = World(self.config, self.clock, built_at=self.built_at)
                    self.builds += 1
        if self._lru is not None:
            self._lru.used(self)  # outside the lock: the LRU takes other accounts' to evict
        return world

    @property
    def built(self) -> bool:
        """Whether the world is in memory now (never asked for, or evicted since: it is not)."""
        return self._world is not None

    @property
    def pinned(self) -> bool:
        """Whether the world is kept for good: handed in as a World, changed by hand, or `pin`ned."""
        world = self._world
        return self._pinned or (world is not None and world.pinned)

    def pin(self) -> None:
        """Keep this account's world for good (a test about to change it in some other way)."""
        self._pinned = True

    def resident(self) -> World | None:
        """The world if it is built and may be evicted, else None."""
        world = self._world
        return None if world is None or self.pinned else world

    def evict(self) -> bool:
        """Drop the world unless it is pinned (the next request builds it again, the same);
        whether it was dropped. A request already holding it finishes with it."""
        with self._lock:
            if self._world is None or self.pinned:
                return False
            self._world = None
            return True

    @property
    def kind(self) -> str:
        """'quiet', 'default' or 'busy', by runs a day (as account_mix draws them)."""
        return kind_of(self.config)

    def __repr__(self) -> str:
        state = "built" if self.built else "not built"
        return f"Account({self.name!r}, {self.config.runs_per_day:g} runs/day, {state})"


def kind_of(config: WorldConfig) -> str:
    if config.runs_per_day < 100:
        return "quiet"
    return "busy" if config.runs_per_day >= 1_000 else "default"


def account_name(i: int, n: int) -> str:
    """acct-0001 ... acct-9999, wider past that so names still sort in order."""
    return f"acct-{i:0{max(4, len(str(n)))}d}"


def account_mix(n: int, seed: int = 1, *, history_days: float = MIX_HISTORY_DAYS,
                **overrides: object) -> list[tuple[str, WorldConfig]]:
    """n (name, WorldConfig) pairs, the same for a seed: mostly quiet accounts, some default-sized
    and about one in a hundred busy.

    quiet: 2 to 50 runs a day (log-uniform), 1 to 5 zaps; default: WorldConfig's 800 runs a day
    over 25 zaps; busy: 2,000 to 5,000 runs a day over 25 to 60 zaps. From 3 accounts on there is
    at least one of each. Every account has `history_days` of history (a week unless given);
    `overrides` (any other WorldConfig knob but those the mix draws: seed, zaps, runs_per_day)
    apply to every account too, e.g. unlisted_open_rate=0.05.
    """
    _check(n, overrides)
    rng = random.Random(seed)
    busy, default = round(n * BUSY_SHARE), round(n * DEFAULT_SHARE)
    if n >= 3:
        busy, default = max(busy, 1), max(default, 1)
    kinds = ["busy"] * busy + ["default"] * default + ["quiet"] * (n - busy - default)
    rng.shuffle(kinds)
    mix = []
    for i, kind in enumerate(kinds, start=1):
        world_seed = rng.randrange(1, 2**31)
        if kind == "quiet":
            low, high = (math.log(x) for x in QUIET_RUNS_PER_DAY)
            size = {"runs_per_day": round(math.exp(rng.uniform(low, high)), 1),
                    "zaps": rng.randint(*QUIET_ZAPS)}
        elif kind == "busy":
            size = {"runs_per_day": float(round(rng.uniform(*BUSY_RUNS_PER_DAY))),
                    "zaps": rng.randint(*BUSY_ZAPS)}
        else:
            size = {}
        mix.append((account_name(i, n), WorldConfig(seed=world_seed, history_days=history_days,
                                                    **size, **overrides)))
    return mix


def heavy_tiers(n: int) -> list[tuple[str, int, float]]:
    """(tier, accounts, runs a day they make together) of heavy_mix(n): 'top' the busiest 1% of
    the accounts (half the runs), 'middle' the next 9% (two fifths), 'rest' the other 90% (a
    tenth). From 3 accounts on every tier has one; below that the tiers there share the runs."""
    if n < 0:
        raise ValueError(f"the number of accounts must be 0 or more, not {n}")
    top = min(n, max(1, round(n * HEAVY_TIERS[0][1])))
    middle = min(n - top, max(1, round(n * HEAVY_TIERS[1][1])))
    counts = (top, middle, n - top - middle)
    shares = sum(share for (_, _, share, _), count in zip(HEAVY_TIERS, counts, strict=True) if count)
    total = n * HEAVY_RUNS_PER_ACCOUNT
    return [(tier, count, total * share / shares if count else 0.0)
            for (tier, _, share, _), count in zip(HEAVY_TIERS, counts, strict=True)]


def heavy_mix(n: int, seed: int = 1, *, history_days: float = HEAVY_HISTORY_DAYS,
              **overrides: object) -> list[tuple[str, WorldConfig]]:
    """n (name, WorldConfig) pairs, the same for a seed: heavy-tailed, as a partner's users are.

    About 20 runs a day an account (200,000 a day at 10,000 accounts): the busiest 1% of the
    accounts make half of them (10 to 40 zaps each), the next 9% two fifths (2 to 10 zaps), the
    other 90% the last tenth (1 to 3 zaps): heavy_tiers(n). About 3% of runs end in `error`
    (error_scale=HEAVY_ERROR_SCALE); about once a week an account's zap fails every run for
    hours (streaks_per_week=HEAVY_STREAKS_PER_WEEK), and flaky zaps fail in bursts. The tiers
    are spread over the names at random. A day of history unless `history_days` says otherwise;
    `overrides` as account_mix takes them (error_scale and streaks_per_week among them).
    """
    _check(n, overrides)
    rng = random.Random(seed)
    tiers = heavy_tiers(n)
    slots = [tier for tier, count, _ in tiers for _ in range(count)]
    rng.shuffle(slots)
    zaps = {tier: span for tier, _, _, span in HEAVY_TIERS}
    drawn = [(rng.randrange(1, 2**31), math.exp(rng.uniform(0.0, math.log(HEAVY_SPREAD))),
              rng.randint(*zaps[tier])) for tier in slots]
    weights = {tier: 0.0 for tier, _, _ in tiers}
    for tier, (_, weight, _) in zip(slots, drawn, strict=True):
        weights[tier] += weight
    made = {tier: runs for tier, _, runs in tiers}
    shared = {"error_scale": HEAVY_ERROR_SCALE, "streaks_per_week": HEAVY_STREAKS_PER_WEEK,
              **overrides}
    return [(account_name(i, n),
             WorldConfig(seed=world_seed, zaps=zap_count, history_days=history_days,
                         runs_per_day=round(made[tier] * weight / weights[tier], 2), **shared))
            for i, (tier, (world_seed, weight, zap_count)) in enumerate(zip(slots, drawn, strict=True),
                                                                      start=1)]


def tier_of(mix: list[tuple[str, WorldConfig]]) -> dict[str, str]:
    """Each account's tier in heavy_mix(len(mix)), by rank of runs a day (the busiest 1% 'top')."""
    ranked = sorted(mix, key=lambda pair: -pair[1].runs_per_day)
    tiers = [tier for tier, count, _ in heavy_tiers(len(mix)) for _ in range(count)]
    return {name: tier for (name, _), tier in zip(ranked, tiers, strict=True)}


# The mixes by name (`--mix`, Simulator.many(mix=...)).
MIXES = {"default": account_mix, "heavy": heavy_mix}


def make_mix(name: str, n: int, seed: int = 1, **overrides: object) -> list[tuple[str, WorldConfig]]:
    """The mix named `name` (MIXES) of n accounts."""
    if name not in MIXES:
        raise ValueError(f"unknown mix {name!r}: pick one of {', '.join(MIXES)}")
    return MIXES[name](n, seed, **overrides)


def _check(n: int, overrides: dict[str, object]) -> None:
    if n < 0:
        raise ValueError(f"the number of accounts must be 0 or more, not {n}")
    drawn = sorted(DRAWN & overrides.keys())
    if drawn:
        raise ValueError(f"the mix draws {', '.join(drawn)} for each account: leave it out")


def expected_runs(config: WorldConfig) -> float:
    """About how many runs the account's world holds once built (its history within retention)."""
    days = min(config.history_days, config.retention_days)
    return config.runs_per_day * days + config.delayed_runs
