"""What a sync spent of the rate limit, by purpose, against the budget of what changed.

An incremental sync should cost what changed, not what exists. For new = runs that started
since the last sync, open = runs open now, recent_errors = failed runs within the replay
horizon and changed = watched runs found changed (their status, or gone), the budget is

    B = ceil(new / page) + ceil(open / page) + ceil(recent_errors / page) + changed

Counted apart from it: the lookback (runs Zapier records late), retries after faults, and what
exactness costs where `statuses=` cannot list: the counts of runs in statuses the contract does
not name and the re-reads they lead to, and the `statuses=error` windows of runs that failed
within the horizon but were triggered before it (after a long Delay). The summary compares
the requests with B in plain words; `--verbose` prints the split and the ratio, with those too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The purposes requests are spent on, in the order the summary shows them.
PURPOSES = ("new", "open", "errors", "rechecks", "lookback", "unlisted", "late")
LABELS = {"new": "new runs", "open": "open listing", "errors": "error listing",
          "rechecks": "re-checks of changed runs", "lookback": "lookback",
          "unlisted": "unlisted-status checks", "late": "late failures"}
# The purposes B bounds; the others are counted apart from it.
IN_BUDGET = ("new", "open", "errors", "rechecks")


@dataclass
class Budget:
    """The counts B is made of, as this sync saw them."""

    new: int = 0
    open: int = 0
    recent_errors: int = 0
    changed: int = 0
    page: int = 100
    # B of other accounts' syncs merged into this one (a pass over many accounts: B adds up
    # account by account, as each account's pages are its own).
    others: int = 0

    @property
    def total(self) -> int:
        pages = sum(math.ceil(n / self.page) for n in (self.new, self.open, self.recent_errors))
        return pages + self.changed + self.others


@dataclass
class Spend:
    """Requests by purpose; retries (a request sent again after a fault) apart."""

    by_purpose: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PURPOSES, 0))
    retries: int = 0
    budget: Budget = field(default_factory=Budget)

    @property
    def checks(self) -> int:
        """Requests that keep a sync exact beyond B: the lookback, unlisted statuses, late failures."""
        return sum(self.by_purpose[p] for p in ("lookback", "unlisted", "late"))

    @property
    def in_budget(self) -> int:
        """The requests B is meant to bound."""
        return sum(self.by_purpose[purpose] for purpose in IN_BUDGET)

    @property
    def ratio(self) -> float | None:
        """Requests spent over B; None when B is 0 (nothing new, open or failed)."""
        total = self.budget.total
        return self.in_budget / total if total else None

    @contextmanager
    def on(self, purpose: str, stats) -> Iterator[None]:
        """Count the client's requests made inside the block under `purpose`."""
        requests, retries = stats.requests, stats.retries
        try:
            yield
        finally:
            again = stats.retries - retries
            self.retries += again
            self.by_purpose[purpose] += stats.requests - requests - again

    def add(self, other: Spend) -> None:
        """Another account's spend, into this pass's total."""
        for purpose, spent in other.by_purpose.items():
            self.by_purpose[purpose] += spent
        self.retries += other.retries
        self.budget.others += other.budget.total

    def split_main(self, lookback_runs: int, new_runs: int, page: int) -> None:
        """The main window is one listing from cursor - lookback: the pages the lookback's runs
        fill count as lookback, the rest as new runs (all of it when nothing new came)."""
        spent = self.by_purpose["new"]
        lookback = spent if not new_runs else min(spent, math.ceil(lookback_runs / page))
        self.by_purpose["new"], self.by_purpose["lookback"] = spent - lookback, lookback

    def detail(self) -> list[tuple[str, str]]:
        """The split by purpose for `--verbose` (label, text): what B bounds, what is counted
        apart from it, and B with the ratio."""
        inside = ", ".join(f"{self.by_purpose[p]:,} {LABELS[p]}" for p in IN_BUDGET)
        apart = ", ".join(f"{self.by_purpose[p]:,} {LABELS[p]}" for p in PURPOSES
                          if p not in IN_BUDGET)
        total = self.budget.total
        ratio = "n/a (B is 0)" if self.ratio is None else f"{self.ratio:.2f}"
        exact = self.in_budget + self.by_purpose["unlisted"] + self.by_purpose["late"]
        also = f" ({exact / total:.2f} with unlisted-status checks and late failures)" \
            if total and exact != self.in_budget else ""
        return [("spent on", inside), ("apart", f"{apart}, {self.retries:,} retries"),
                ("budget", f"B {total:,} (what changed), ratio {ratio}{also}")]
