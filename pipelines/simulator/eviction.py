"""Which accounts' worlds stay in memory: past a bound, the least recently asked for are evicted."""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .accounts import Account
    from .world import World

# Estimated memory of a built world: per run held (about 3.5 KB: the run, its steps, data and
# indexes; 1.3 KB more for the JSON kept once it was served) and per world (zaps, its random
# generator's state, empty indexes: about 7 KB). Measured by RSS and tracemalloc.
RUN_BYTES = 4_000
WORLD_BYTES = 8_000
# The bound by default: about 250,000 runs built at once. 10,000 accounts of the heavy mix
# (accounts.heavy_mix: 200,000 runs a day, a day of history) then peaked at 993 MB of RSS over a
# simulated day, 2 GB being the goal (benchmarks/simulator_accounts.py --mix heavy --hours 24).
DEFAULT_WORLD_MEMORY_MB = 1_000.0


def estimated_bytes(world: World) -> int:
    return WORLD_BYTES + RUN_BYTES * len(world.runs)


class WorldLRU:
    """Built worlds by how recently their account was asked for, and their estimated memory.

    `used(account)` (every `Account.world`) makes the account the most recent; when the
    estimated memory of the built worlds passes `memory_mb`, the least recent are evicted until
    it is within the bound again (the one just asked for stays, however large). A pinned world
    is neither counted nor evicted. `memory_mb` None: nothing is ever evicted.
    """

    def __init__(self, memory_mb: float | None = DEFAULT_WORLD_MEMORY_MB) -> None:
        if memory_mb is not None and not memory_mb >= 0:
            raise ValueError(f"the worlds' memory bound must be 0 MB or more, not {memory_mb}")
        self.memory_mb = memory_mb
        self._sizes: collections.OrderedDict[str, tuple[Account, int]] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evictions = 0

    def used(self, account: Account) -> None:
        world = account.resident()
        size = None if world is None else estimated_bytes(world)
        with self._lock:
            before = self._sizes.pop(account.name, None)
            if before is not None:
                self._bytes -= before[1]
            if size is None:  # evicted meanwhile, or pinned: not ours to count
                return
            self._sizes[account.name] = (account, size)
            self._bytes += size
            if self.memory_mb is None:
                return
            bound = self.memory_mb * 2**20
            while self._bytes > bound and len(self._sizes) > 1:
                _, (oldest, size) = self._sizes.popitem(last=False)
                self._bytes -= size
                if oldest.evict():
                    self.evictions += 1

    @property
    def estimated_mb(self) -> float:
        """The estimated memory of the built worlds that may be evicted, in MB."""
        with self._lock:
            return self._bytes / 2**20

    def __len__(self) -> int:
        """How many built worlds may be evicted."""
        with self._lock:
            return len(self._sizes)
