"""Sending a message to a channel: a signed JSON webhook, a Slack incoming webhook, an email over
SMTP, a JSON Lines file or the terminal.

Why not apprise: it cannot sign a body per message (HMAC) or set a per-message idempotency
header, it reports a failure as a bare False (the backoff and `status` need the reason), and
Slack, a webhook and SMTP are each a few lines over httpx and the standard library.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx

from .channels import Channel
from .messages import SIGNATURE_HEADER, Transition, message_key, payload_of, signature, subject_of, text_of

SEND_TIMEOUT_SECONDS = 10.0


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
