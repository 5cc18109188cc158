"""Where incident alerts go: the channels configured partner-wide under
[sources.zap_runs.alerts.<name>] (.dlt/secrets.toml) and an account entry's own `alerts`.

A channel is a table with a `kind`:

- `webhook`: `url` and `secret`; a JSON body signed with HMAC-SHA256 (messages.py, sent by sending.py);
- `slack`: `url`, a Slack incoming webhook;
- `email`: `smtp_host`, `smtp_port` (587), `username`, `password`, `from_addr`, `to` (a list or
  comma-separated), `starttls` (true) or `ssl` (false);
- `file`: `path`, a JSON Lines file a line per message; `terminal`: the message text on stdout.

Any channel may set `digest = true`: one message a delivery with every transition, instead of
one a transition. URLs, secrets and passwords are secrets: `repr` never shows them, messages
name a channel by its name only, and `scrub` takes them out of any error text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..common.errors import ConfigError

KINDS = {
    "webhook": ({"url", "secret"}, set()),
    "slack": ({"url"}, set()),
    "email": ({"smtp_host", "from_addr", "to"},
              {"smtp_port", "username", "password", "starttls", "ssl"}),
    "file": ({"path"}, set()),
    "terminal": (set(), set()),
}
COMMON = {"kind", "digest"}
# Keys whose values are text (the others: smtp_port, to, starttls, ssl, digest).
TEXTS = {"url", "secret", "smtp_host", "username", "password", "from_addr", "path"}
SECRET_KEYS = ("url", "secret", "password", "username")
WHERE = "[sources.zap_runs.alerts.{name}]"


@dataclass(frozen=True)
class Channel:
    """One destination of alerts: partner-wide (`account` None: every account's incidents) or
    one account's own. `options` holds the kind's keys; `repr` never shows them."""

    name: str
    kind: str
    options: Mapping = field(repr=False, compare=False, hash=False)
    account: str | None = None
    digest: bool = False

    def scrub(self, text: str) -> str:
        """`text` with every secret of this channel replaced by ***."""
        for key in SECRET_KEYS:
            value = self.options.get(key)
            if isinstance(value, str) and len(value) >= 4:
                text = text.replace(value, "***")
        return text

    def covers(self, account_id: str) -> bool:
        return self.account is None or self.account == account_id

    def describe(self) -> str:
        """The channel for people: name and kind, and for a file its path; never a secret."""
        where = f" {self.options['path']}" if self.kind == "file" else ""
        scope = f" (account {self.account})" if self.account else ""
        return f"{self.name} ({self.kind}{where}){scope}"


def _flag(value: object, where: str, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{where}: {key} must be true or false.")


def parse_channel(name: str, table: object, where: str, account: str | None = None) -> Channel:
    """One channel table as a Channel; ConfigError names `where` and the key, never a value."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: an alert channel must be a table with a kind (webhook, slack, "
                          "email, file or terminal).")
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        shown = repr(kind) if isinstance(kind, str) else type(kind).__name__
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)} (got {shown[:40]}).")
    required, optional = KINDS[kind]
    unknown = sorted(set(table) - required - optional - COMMON)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} for a {kind} channel (use "
                          f"{', '.join(sorted(required | optional | COMMON))}).")
    missing = sorted(key for key in required if table.get(key) in (None, "", []))
    if missing:
        raise ConfigError(f"{where}: a {kind} channel needs {', '.join(missing)}.")
    options = dict(table)
    for key in TEXTS & set(options):
        if not isinstance(options[key], str):
            raise ConfigError(f"{where}: {key} must be a string.")
        options[key] = options[key].strip()
    if kind in ("webhook", "slack"):
        import httpx  # only a channel's URL needs it: status loads no HTTP client

        try:
            url = httpx.URL(options["url"])
        except (httpx.InvalidURL, TypeError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{where}: url must be an http(s) URL.")
    if kind == "email":
        to = options["to"]
        to = [a.strip() for a in to.split(",")] if isinstance(to, str) else \
            list(to) if isinstance(to, list) else []
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise ConfigError(f"{where}: to must be one address or a list of addresses.")
        options["to"] = to
        for key in ("starttls", "ssl"):
            if key in options:
                options[key] = _flag(options[key], where, key)
        try:
            options["smtp_port"] = int(options.get("smtp_port", 465 if options.get("ssl") else 587))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: smtp_port must be a number.") from None
    digest = _flag(table.get("digest", False), where, "digest")
    return Channel(name, kind, options, account, digest)


def _tables(value: object) -> object:
    """A mapping, or a JSON text of one (an environment variable), as is; anything else as is."""
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def partner_channels(configured: object) -> list[Channel]:
    """The channels under [sources.zap_runs.alerts]: a table per channel name."""
    configured = _tables(configured)
    if configured is None:
        return []
    if not isinstance(configured, Mapping):
        raise ConfigError("[sources.zap_runs.alerts] must hold one table per channel: "
                          "[sources.zap_runs.alerts.<name>] with a kind.")
    return [parse_channel(str(name), table, WHERE.format(name=name))
            for name, table in configured.items()]


def account_channels(account: str, configured: object, where: str) -> list[Channel]:
    """An account entry's own `alerts`: one channel table or a list of them, named
    `<account>/<kind>` (`<account>/<kind>-<n>` for a second one of a kind)."""
    configured = _tables(configured)
    tables = configured if isinstance(configured, list) else [configured]
    channels, seen = [], {}
    for number, table in enumerate(tables, 1):
        kind = table.get("kind") if isinstance(table, Mapping) else None
        kind = kind if isinstance(kind, str) else None
        seen[kind] = seen.get(kind, 0) + 1
        name = f"{account}/{kind}" + (f"-{seen[kind]}" if seen[kind] > 1 else "")
        channels.append(parse_channel(name, table, f"{where} (account {account}, alerts #{number})",
                                      account=account))
    return channels
