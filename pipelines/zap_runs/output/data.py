"""What the dashboard page shows, read from the marts (dashboard.read_data fills it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Data:
    """What the page shows, read from the marts: one account's rows, or every account's."""

    daily: list[dict]
    health: list[dict]
    steps: list[dict]
    durations: list[dict]
    built_at: datetime
    accounts: list[dict] = field(default_factory=list)  # account_health, the page's accounts
    shared_steps: list[dict] = field(default_factory=list)  # partner_step_failures
    freshness: list[dict] = field(default_factory=list)  # account_freshness, the page's accounts
    account: str | None = None  # the account the page is for; None: every account
    incidents: list[dict] = field(default_factory=list)  # zap_incidents, the open ones
    incident_rules: tuple[int, int] | None = None  # (open_after, resolve_after) they were built by

    @property
    def is_partner_view(self) -> bool:
        """Several accounts on one page: zaps are told apart by their account too."""
        return self.account is None and len(self.accounts) > 1
