"""Real local receivers for alert tests: an HTTP server that records what it is sent and answers
what the test asks for, and an SMTP server (aiosmtpd) that keeps the mail it is given."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; `fail[path]` answers are used first (one a request), then 200;
    `on_request(received)` runs before the answer (a test may kill the sender there)."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    fail: dict[str, list[int]] = field(default_factory=dict)
    on_request: Callable[[Received], None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def ok(self, path: str | None = None) -> list[Received]:
        return [r for r in self.received if r.status < 300 and (path is None or r.path == path)]

    def taken(self, path: str | None = None) -> list[str]:
        """Every transition key the receiver took (200), in order."""
        return [t["idempotency_key"] for r in self.ok(path) for t in r.json["transitions"]]


def start_http() -> HttpReceiver:
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answers = receiver.fail.get(self.path) or []
            status = answers.pop(0) if answers else 200
            got = Received(self.path, dict(self.headers), body, status)
            receiver.received.append(got)
            if receiver.on_request is not None:
                receiver.on_request(got)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = HttpReceiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        message = message_from_bytes(envelope.content)
        message["X-Rcpt"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def start_smtp() -> tuple[Controller, _Mailbox]:
    mailbox = _Mailbox()
    with socket.socket() as probe:  # aiosmtpd needs a port number up front
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, mailbox
