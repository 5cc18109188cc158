"""The accounts a sync reads: one by default, or many for partners (one Zapier user each).

Accounts come from three places, merged in this order (a later name replaces nothing: a
repeated name is reported as a bad entry):

- `[sources.zap_runs.accounts.<name>]` in .dlt/secrets.toml: a few named entries;
- `accounts_file`: JSON Lines, one account a line, for many;
- the source's `accounts` argument: a list of `Account` or of dicts, for apps that embed the
  source (Airflow, Dagster).

Each entry holds an `access_token`, or a `refresh_token` with the app's `client_id` and
`client_secret` (shared ones from [sources.zap_runs] apply when the entry has none), and may
hold a `data_policy` (reading/policy.py) and its own alert channels, `alerts` (alerts/channels.py). A
bad entry is reported by name and line, never with its secrets, and the other accounts still
sync.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..common.errors import ConfigError

# Names end up in file names (token stores), SQL literals and log lines: keep them plain.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
FIELDS = {"name", "access_token", "refresh_token", "client_id", "client_secret", "data_policy",
          "alerts"}
SECRET_FIELDS = ("access_token", "refresh_token", "client_id", "client_secret")
DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class Account:
    """One Zapier user's credentials; `repr` never shows them."""

    name: str
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    data_policy: Mapping | None = None
    # Its own alert channels (one table or a list; alerts/channels.py): URLs and secrets.
    alerts: object = field(default=None, repr=False, compare=False)
    where: str = field(default="", compare=False)  # where it was configured, for messages

    def fingerprint(self) -> str:
        """A short digest of the configured credentials: an account skipped for a refused token
        is tried again once this changes. One-way, and too short to test guesses against a
        token of Zapier's length, so it may be kept in the pipeline state."""
        text = "\x00".join(getattr(self, name) or "" for name in SECRET_FIELDS)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Accounts:
    """The accounts to sync, and the entries that could not be read (as one-line messages)."""

    accounts: list[Account]
    # (the entry's account name, else where it is, for sharding; a message that says where)
    problems: list[tuple[str, str]]


def _clean(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def from_entry(entry: object, where: str, shared: Mapping[str, str | None]) -> Account:
    """One entry as an Account; ConfigError names `where` and the field, never a secret."""
    if isinstance(entry, Account):
        entry = {"name": entry.name, "access_token": entry.access_token,
                 "refresh_token": entry.refresh_token, "client_id": entry.client_id,
                 "client_secret": entry.client_secret, "data_policy": entry.data_policy,
                 "alerts": entry.alerts}
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: an account must be a table (or JSON object) with a name "
                          "and an access_token or refresh_token.")
    unknown = sorted(set(entry) - FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (use {', '.join(sorted(FIELDS))}).")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}: the account name must be 1-100 letters, digits or _.@+- "
                          "(starting with a letter or digit).")
    for key in SECRET_FIELDS:
        if entry.get(key) is not None and not isinstance(entry.get(key), str):
            raise ConfigError(f"{where} (account {name}): {key} must be a string.")
    access, refresh = _clean(entry.get("access_token")), _clean(entry.get("refresh_token"))
    client_id = _clean(entry.get("client_id")) or shared.get("client_id")
    client_secret = _clean(entry.get("client_secret")) or shared.get("client_secret")
    if not access and not refresh:
        raise ConfigError(f"{where} (account {name}): give an access_token, or a refresh_token "
                          "with client_id and client_secret.")
    if refresh and not (client_id and client_secret):
        raise ConfigError(f"{where} (account {name}): a refresh_token needs client_id and "
                          "client_secret, in the entry or under [sources.zap_runs].")
    policy = entry.get("data_policy")
    if policy is not None and not isinstance(policy, Mapping):
        raise ConfigError(f"{where} (account {name}): data_policy must be a table.")
    alerts = entry.get("alerts")
    if alerts is not None:
        from ..alerts.channels import account_channels

        account_channels(name, alerts, where)  # a bad channel makes a bad entry, named here
    return Account(name, access, refresh, client_id, client_secret, policy, alerts, where)


def read_file(path: str) -> Iterable[tuple[object, str]]:
    """(entry, where) per non-blank line of a JSON Lines file; a line that is no JSON yields a
    ConfigError in place of the entry (its text is not shown: it may hold a token)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read accounts_file {path}: {exc.strerror}; check the "
                          "path under [sources.zap_runs].") from None
    except UnicodeDecodeError:
        raise ConfigError(f"accounts_file {path} is not UTF-8 text (JSON Lines).") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            yield json.loads(line), where
        except ValueError:
            yield ConfigError(f"{where}: not a JSON object (one account per line)."), where


def _name_of(entry: object) -> str | None:
    name = entry.get("name") if isinstance(entry, Mapping) else getattr(entry, "name", None)
    return name if isinstance(name, str) and NAME.match(name) else None


def collect(named: Mapping | None, file: str | None, given: Iterable | None,
            shared: Mapping[str, str | None]) -> Accounts:
    """Every configured account, in configuration order, and the problems of the bad entries."""
    entries: list[tuple[object, str]] = []
    if named:
        if not isinstance(named, Mapping):
            raise ConfigError("[sources.zap_runs.accounts] must hold one table per account: "
                              "[sources.zap_runs.accounts.<name>].")
        for name, entry in named.items():
            where = f"[sources.zap_runs.accounts.{name}]"
            entries.append(({**entry, "name": name} if isinstance(entry, Mapping) else entry, where))
    if file:
        entries.extend(read_file(file))
    if given is not None:
        if isinstance(given, (str, bytes, Mapping)):
            raise ConfigError("the accounts argument must be a list of Account or dicts.")
        entries.extend((entry, f"accounts[{i}]") for i, entry in enumerate(given))
    accounts: list[Account] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry, where in entries:
        if isinstance(entry, ConfigError):
            problems.append((where, str(entry)))
            continue
        try:
            account = from_entry(entry, where, shared)
        except ConfigError as exc:
            problems.append((_name_of(entry) or where, str(exc)))
            continue
        # Names differing only in case would share a token store on a case-insensitive disk.
        if account.name.lower() in seen:
            problems.append((account.name, f"{where}: account {account.name} is configured twice "
                                           "(names are compared without case); the first entry "
                                           "is used."))
            continue
        seen.add(account.name.lower())
        accounts.append(account)
    return Accounts(accounts, problems)


def shard_of(name: str, shards: int) -> int:
    """The shard (0 .. shards-1) an account belongs to: a stable hash of its name, the same in
    every process and Python version (never Python's randomised hash())."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % shards


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' as (i, n) with 0 <= i < n; ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ConfigError(f"--shard {text!r} is not i/n with 0 <= i < n (e.g. 0/4 ... 3/4).")
    return int(match[1]), int(match[2])


def configured(file: str | None = None) -> dict[str, str]:
    """Every account name the configuration holds, bad entries included (name -> where):
    `[sources.zap_runs.accounts.<name>]` tables and the accounts file (`file`, else
    accounts_file under [sources.zap_runs]). For the commands that read no account's runs."""
    import dlt

    named = dlt.secrets.get("sources.zap_runs.accounts")
    file = file or dlt.config.get("sources.zap_runs.accounts_file")
    found = collect(named if isinstance(named, Mapping) else None, file, None, {})
    names = {account.name: account.where for account in found.accounts}
    for key, message in found.problems:
        names.setdefault(key, message.split(":", 1)[0])
    return names
