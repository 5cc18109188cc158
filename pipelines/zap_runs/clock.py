"""The sync's clock, and how it writes times: ISO text for the API and its state, spans for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """The sync's clock (tests of long gaps move it)."""
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span(delta: timedelta) -> str:
    """A span of time for people: hours, or days from two days on."""
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
