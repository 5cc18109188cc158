"""Incident alerts as messages: each transition's stable key, the message's key, and what a
message says (text, the signed JSON payload, an email subject). sending.py sends them."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from .channels import Channel

SIGNATURE_HEADER = "X-Zap-Runs-Signature"
PAYLOAD_TYPE = "zap_runs.incidents"


@dataclass(frozen=True)
class Transition:
    """An incident that opened or resolved (or a test sample): what every channel says of it.
    `key` is stable for the incident (account, zap, its first failed run) and the event."""

    key: str
    event: str  # opened | resolved | test
    account_id: str
    zap_id: int | None
    zap_title: str | None
    opened_at: datetime | None
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    resolved_at: datetime | None
    failed_runs: int | None
    first_failed_run_id: str | None
    first_failed_step: int | None
    first_failed_status: str | None
    reason: str | None = None  # why a resolution came without successes (replays)


def transition_key(account_id: str, zap_id: object, first_failed_run_id: object, event: str) -> str:
    text = "\x00".join(str(part) for part in (account_id, zap_id, first_failed_run_id, event))
    return "zri_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def message_key(transitions: list[Transition]) -> str:
    """The idempotency key of a message: its transition's, or a digest's of all of them."""
    if len(transitions) == 1:
        return transitions[0].key
    text = "\x00".join(sorted(t.key for t in transitions))
    return "zrd_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def sample(channel: Channel) -> Transition:
    """The message `alerts test` sends: a test event, its key new each time."""
    import uuid

    return Transition(f"zrt_{uuid.uuid4().hex}", "test", channel.account or "every account",
                      None, "zap-runs test alert", None, None, None, None, None, None, None, None)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else "?"


def text_of(t: Transition) -> str:
    """One line for people (Slack, email, the terminal)."""
    zap = f"Zap \"{t.zap_title or 'untitled'}\" (#{t.zap_id}, account {t.account_id})"
    if t.event == "test":
        return f"zap-runs test alert: this channel receives incidents ({t.account_id})."
    if t.event == "opened":
        step = f"step {t.first_failed_step}" if t.first_failed_step is not None else "an unknown step"
        return (f"{zap} is failing: {t.failed_runs} failed runs since "
                f"{_when(t.first_failed_at)}; the first failed at {step} "
                f"({t.first_failed_status or 'error'}).")
    if t.reason:
        return f"{zap} is no longer failing: {t.reason} (failing since {_when(t.first_failed_at)})."
    return (f"{zap} recovered at {_when(t.resolved_at)} after {t.failed_runs} failed runs "
            f"(failing since {_when(t.first_failed_at)}).")


def payload_of(transitions: list[Transition], key: str | None = None) -> bytes:
    """The JSON body of webhook and file messages: the same bytes each time it is sent, so a
    receiver can compare signatures and keys across retries."""
    items = []
    for t in transitions:
        item = {k: (v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v)
                for k, v in asdict(t).items()}
        item["idempotency_key"] = item.pop("key")
        item["text"] = text_of(t)
        items.append(item)
    body = {"type": PAYLOAD_TYPE, "idempotency_key": key or message_key(transitions),
            "transitions": items}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """The webhook's X-Zap-Runs-Signature: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def subject_of(transitions: list[Transition]) -> str:
    if len(transitions) == 1:
        t = transitions[0]
        what = {"opened": "failing", "resolved": "recovered", "test": "test alert"}[t.event]
        return f"[zap-runs] {what}: {t.zap_title or 'zap'} ({t.account_id})"[:200]
    opened = sum(t.event == "opened" for t in transitions)
    return f"[zap-runs] {opened} incidents opened, {len(transitions) - opened} resolved"
