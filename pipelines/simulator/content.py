"""Seeded content for the simulated world: zaps with titles, and data_in/data_out values."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

_APPS = ["Gmail", "Slack", "HubSpot", "Salesforce", "Google Sheets", "Stripe", "Trello",
         "Notion", "Airtable", "Shopify", "Typeform", "Calendly", "Jira", "Asana", "Mailchimp"]
_VERBS = ["New lead", "New row", "Paid invoice", "Form answer", "New order", "New ticket",
          "Updated deal", "New subscriber", "Booked meeting", "New file"]
# Titles that break naive HTML, CSV and encoding handling: real users type these.
_ODD_TITLES = ["<b>Leads</b> & \"VIP\" → CRM", "Café ☕ orders → Sheets", "日本語の注文を同期",
               "Zoë's 🚀 launch alerts", "O'Brien, Smith; and co", "   spaced   title  "]


@dataclass
class Zap:
    """A Zap of the simulated account: how often it runs and how it fails."""

    id: int
    title: str | None
    runs_per_hour: float
    step_count: int
    error_rate: float
    delay_step: int | None  # index of a Delay step, if the Zap has one
    bursts: list[tuple[datetime, datetime]] = field(default_factory=list)
    # Hours in which every run fails (an app disconnected, a login expired): WorldConfig's
    # streaks_per_week.
    streaks: list[tuple[datetime, datetime]] = field(default_factory=list)

    def outage_until(self, when: datetime) -> datetime | None:
        """The end of the streak `when` falls in (every run fails until then), else None."""
        return next((end for start, end in self.streaks if start <= when < end), None)

    def error_rate_at(self, when: datetime) -> float:
        for start, end in self.streaks:
            if start <= when < end:
                return 1.0
        for start, end in self.bursts:
            if start <= when < end:
                return 0.75
        return self.error_rate


def make_zaps(rng: random.Random, count: int, runs_per_day: float, start: datetime,
              end: datetime, error_scale: float = 1.0) -> list[Zap]:
    """Zaps whose busy-ness follows a long tail, a few of them flaky with error bursts.

    `error_scale` multiplies each zap's usual chance of failing (its bursts, streaks of
    failures, stay as they are); it draws no random number, so the zaps are the same.
    """
    weights = [rng.paretovariate(1.2) for _ in range(count)]
    total = sum(weights)
    zaps = []
    used_ids: set[int] = set()
    for i, weight in enumerate(weights):
        zap_id = rng.randrange(100_000_000, 999_999_999)
        while zap_id in used_ids:
            zap_id = rng.randrange(100_000_000, 999_999_999)
        used_ids.add(zap_id)
        if i < len(_ODD_TITLES) and rng.random() < 0.6:
            title: str | None = _ODD_TITLES[i]
        elif rng.random() < 0.03:
            title = None
        else:
            title = f"{rng.choice(_VERBS)} in {rng.choice(_APPS)} → {rng.choice(_APPS)}"
        flaky = rng.random() < 0.25
        steps = rng.randint(2, 6)
        zap = Zap(
            id=zap_id,
            title=title,
            runs_per_hour=runs_per_day * weight / total / 24.0,
            step_count=steps,
            error_rate=(rng.uniform(0.08, 0.3) if flaky else rng.uniform(0.0, 0.04)) * error_scale,
            # A Delay step sits between the trigger and the last action.
            delay_step=rng.randint(1, steps - 2) if steps >= 3 and rng.random() < 0.15 else None,
        )
        if flaky:
            days = max(1, int((end - start).total_seconds() // 86400))
            for _ in range(rng.randint(1, 1 + days // 7)):
                burst_start = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
                zap.bursts.append((burst_start, burst_start + timedelta(hours=rng.uniform(1, 8))))
        zaps.append(zap)
    return zaps


STREAK_HOURS = (1.0, 6.0)


def add_streaks(rng: random.Random, zaps: list[Zap], start: datetime, end: datetime,
                per_week: float) -> None:
    """About `per_week` streaks a week between start and end, each on a zap picked by its share
    of the runs: for 1 to 6 hours every run of that zap fails."""
    span = (end - start).total_seconds()
    weights = [zap.runs_per_hour for zap in zaps]
    if per_week <= 0 or not zaps or span <= 0 or sum(weights) <= 0:
        return
    expected = per_week * span / (7 * 86400)
    for _ in range(max(0, round(rng.gauss(expected, expected ** 0.5)))):
        zap = rng.choices(zaps, weights)[0]
        begins = start + timedelta(seconds=rng.uniform(0, span))
        zap.streaks.append((begins, begins + timedelta(hours=rng.uniform(*STREAK_HOURS))))


def hourly_factor(hour: int) -> float:
    """The daily rhythm: busy in working hours (UTC), quiet at night."""
    return 1.6 if 8 <= hour < 18 else (0.9 if 6 <= hour < 22 else 0.35)


# The same 200 keys in every large value: one dict shared by all of them (each its own was about
# a fifth of a world's memory). Nothing may mutate what data_in/data_out hold.
_BLOB_KEYS = {f"k{i}": i for i in range(200)}


def make_data(rng: random.Random, index: int) -> object:
    """A data_in/data_out value: every JSON type, unicode, traps and now and then a large one."""
    roll = rng.random()
    if roll < 0.45:
        return {"id": index, "email": f"user{index}@example.com", "amount": round(rng.uniform(0, 999), 2),
                "tags": ["a", "b"][: rng.randint(0, 2)], "nested": {"ok": rng.random() < 0.5, "n": None}}
    if roll < 0.55:
        return [index, "two", 3.5, None, True, {"k": "v"}]
    if roll < 0.62:
        return ""
    if roll < 0.68:
        return rng.choice(["plain text", "Zoë 🚀 日本 — ünïcödé", "null", "{\"looks\": \"like json\"}",
                           "2024-10-16T06:29:10.360000Z", "12345", "true", " "])
    if roll < 0.73:
        return rng.choice([0, -7, 42, 3.14159, 1e-7, 2**53 + 1, 12345678901234567890])
    if roll < 0.77:
        return rng.random() < 0.5
    if roll < 0.85:
        return None
    if roll < 0.87:
        return {"blob": "x" * rng.randint(5_000, 20_000), "keys": _BLOB_KEYS}
    return {}
