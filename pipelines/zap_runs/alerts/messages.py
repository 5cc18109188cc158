"""Incident alerts as messages, and sending one to a channel: a signed JSON webhook, a Slack
incoming webhook, an email over SMTP, a JSON Lines file or the terminal.

Why not apprise: it cannot sign a body per message (HMAC) or set a per-message idempotency
header, it reports a failure as a bare False (the backoff and `status` need the reason), and
Slack, a webhook and SMTP are each a few lines over httpx and the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx

from .channels import Channel

SEND_TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-Zap-Runs-Signature"
PAYLOAD_TYPE = "zap_runs.incidents"


class _HideChannelUrls(logging.Filter):
    """httpx logs each request's URL at INFO; an app that embeds the sync may log httpx at INFO,
    and a channel's URL is a secret (a Slack webhook's path is its key): such records are
    dropped while the URL is being posted to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.urls:
            return True
        text = record.getMessage()
        return not any(url in text for url in self.urls)


_HIDDEN = _HideChannelUrls()
logging.getLogger("httpx").addFilter(_HIDDEN)


class SendError(Exception):
    """A channel did not take a message; the text names no secret."""


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


def send(channel: Channel, transitions: list[Transition], key: str | None = None) -> None:
    """Send one message with `transitions` to `channel`, `key` its idempotency key (by default
    message_key's); SendError (scrubbed) when it fails, whatever failed."""
    try:
        SENDERS[channel.kind](channel, transitions, key or message_key(transitions))
    except SendError as exc:
        raise SendError(channel.scrub(str(exc))) from None
    except httpx.TimeoutException:
        raise SendError(f"no answer within {SEND_TIMEOUT_SECONDS:g} s") from None
    except Exception as exc:  # noqa: BLE001 - any failure of one channel is that channel's
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SendError(channel.scrub(f"{type(exc).__name__}: {reason}")[:200]) from None


def _post(channel: Channel, body: bytes, headers: dict) -> None:
    url = channel.options["url"]
    forms = {url, str(httpx.URL(url))}  # as configured, and as httpx writes it (normalised)
    _HIDDEN.urls.update(forms)
    try:
        with httpx.Client(timeout=SEND_TIMEOUT_SECONDS, follow_redirects=False) as http:
            response = http.post(url, content=body,
                                 headers={"Content-Type": "application/json", **headers})
    finally:
        _HIDDEN.urls.difference_update(forms)
    if response.status_code >= 300:
        raise SendError(f"HTTP {response.status_code} {response.reason_phrase}".strip())


def _webhook(channel: Channel, transitions: list[Transition], key: str) -> None:
    body = payload_of(transitions, key)
    _post(channel, body, {"Idempotency-Key": key,
                          SIGNATURE_HEADER: signature(channel.options["secret"], body),
                          "User-Agent": "zap-runs"})


def _slack(channel: Channel, transitions: list[Transition], key: str) -> None:
    text = "\n".join(f"{':white_check_mark:' if t.event == 'resolved' else ':rotating_light:'} "
                     f"{text_of(t)}" for t in transitions)
    _post(channel, json.dumps({"text": text}).encode(), {})


def _email(channel: Channel, transitions: list[Transition], key: str) -> None:
    options = channel.options
    message = EmailMessage()
    message["Subject"] = subject_of(transitions)
    message["From"] = options["from_addr"]
    message["To"] = ", ".join(options["to"])
    # Mail clients treat one Message-ID as one message: a resend shows once.
    message["Message-ID"] = f"<{key}@zap-runs>"
    message.set_content("\n\n".join(text_of(t) for t in transitions) + "\n")
    host, port = options["smtp_host"], options["smtp_port"]
    if options.get("ssl"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=SEND_TIMEOUT_SECONDS,
                                context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=SEND_TIMEOUT_SECONDS)
    with smtp:
        if not options.get("ssl") and options.get("starttls", True):
            smtp.starttls(context=ssl.create_default_context())
        if options.get("username"):
            smtp.login(options["username"], options.get("password") or "")
        smtp.send_message(message)


def _file(channel: Channel, transitions: list[Transition], key: str) -> None:
    path = Path(channel.options["path"]).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.write(payload_of(transitions, key) + b"\n")


def _terminal(channel: Channel, transitions: list[Transition], key: str) -> None:
    for t in transitions:
        print(f"  alert      {text_of(t)}", file=sys.stdout)


SENDERS = {"webhook": _webhook, "slack": _slack, "email": _email, "file": _file,
           "terminal": _terminal}
