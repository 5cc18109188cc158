"""The partner's accounts: one World per access token, built on first use, and a seeded mix of them."""

from __future__ import annotations

import math
import random
import threading

from .auth import DEFAULT_ACCOUNT
from .clock import ManualClock, RealClock
from .world import World, WorldConfig

__all__ = ["DEFAULT_ACCOUNT", "Account", "account_mix", "expected_runs", "kind_of"]

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


class Account:
    """One account of the partner: a name, its World (built when first needed) and its token.

    A world is built on its account's first request (or first read of `.world`), at the
    clock's time then: a thousand accounts cost nothing until they are asked for.
    """

    def __init__(self, name: str, config: WorldConfig, clock: RealClock | ManualClock,
                 token: str, scopes: tuple[str, ...], world: World | None = None) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.token = token  # an access token that never expires (until revoked)
        self.scopes = scopes
        self._world = world
        self._lock = threading.Lock()

    @property
    def world(self) -> World:
        world = self._world
        if world is None:
            with self._lock:
                if self._world is None:
                    self._world = World(self.config, self.clock)
                world = self._world
        return world

    @property
    def built(self) -> bool:
        """Whether the world exists yet (no request and no `.world` read: it does not)."""
        return self._world is not None

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
    if n < 0:
        raise ValueError(f"the number of accounts must be 0 or more, not {n}")
    drawn = sorted(DRAWN & overrides.keys())
    if drawn:
        raise ValueError(f"the mix draws {', '.join(drawn)} for each account: leave it out")
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


def expected_runs(config: WorldConfig) -> float:
    """About how many runs the account's world holds once built (its history within retention)."""
    days = min(config.history_days, config.retention_days)
    return config.runs_per_day * days + config.delayed_runs
