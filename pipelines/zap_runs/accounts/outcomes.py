"""What a sync read, as it goes (for the display and the summary), and how each account of a
pass fared (for the summary and the sync log)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..reading.spend import Spend

if TYPE_CHECKING:
    from ..api.client import ZapierClient


@dataclass
class SyncProgress:
    """What a sync read, filled in as it goes, for the display and the summary. In a pass over
    many accounts, the pass's progress holds the totals and `current` the account being read."""

    window_from: datetime | None = None
    window_to: datetime | None = None
    run_ids: set[str] = field(default_factory=set)
    rechecks: int = 0
    open_runs: int = 0
    spend: Spend = field(default_factory=Spend)
    warnings: list[str] = field(default_factory=list)
    client: ZapierClient | None = None
    done: int = 0  # runs fetched by the accounts read before `current`
    current: SyncProgress | None = None
    outcomes: list[AccountOutcome] = field(default_factory=list)  # one per account, in a pass
    default_account: str = "default"  # the account rows from before accounts belong to
    many: bool = False  # a pass over configured accounts (isolated failures)
    due: int | None = None  # accounts due in a scheduled pass (None: every account was read)
    configured: int | None = None  # accounts configured (in this shard)

    @property
    def fetched(self) -> int:
        """Runs fetched so far."""
        current = self.current
        return self.done + len(self.run_ids) + (len(current.run_ids) if current else 0)

    @property
    def rechecks_now(self) -> int:
        current = self.current
        return self.rechecks + (current.rechecks if current else 0)


# The results of an account whose runs a pass did not load (a deferred backfill is no failure).
NOT_LOADED = ("failed", "skipped", "invalid")


def split(outcomes: list[AccountOutcome]) -> tuple[list, list, list]:
    """(the accounts, those of them that failed or were skipped, the bad entries of the
    configuration): a bad entry is no account, and is counted apart."""
    accounts = [o for o in outcomes if o.result != "invalid"]
    return (accounts, [o for o in accounts if o.result in NOT_LOADED],
            [o for o in outcomes if o.result == "invalid"])


@dataclass
class AccountOutcome:
    """How one account fared in a pass (a row of the sync log): success, failed, skipped
    (refused credentials, or paused), deferred (a backfill waiting for the next pass), or
    invalid: a bad entry of the configuration, no account (`account` says where it is, `error`
    says where and what)."""

    account: str
    result: str
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None
    progress: SyncProgress | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    fetched: int = 0
    # When the sync last read the account, when it is next due and why: the pass's plan
    # (schedule.py), set as the pass writes the account's state row; None where no row is written.
    last_read_at: datetime | None = None
    next_due_at: datetime | None = None
    due_reason: str | None = None
