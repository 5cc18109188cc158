"""What may be stored of a run's data_in/data_out: keep, drop, or redact keys, before anything is written.

A run's input and output carry whatever the zap moved (emails, phone numbers, tokens); the sync
stores them as the exact JSON text the API sent (rows.py). The policy comes from
[sources.zap_runs.data_policy], overridable per account (docs/data-policy.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import dlt
import msgspec
import orjson

from ..api.jsonvalues import json_bytes
from ..common.errors import ConfigError

logger = logging.getLogger(__name__)

KEEP, DROP, REDACT = "keep", "drop", "redact"
MODES = (KEEP, DROP, REDACT)
HASH, NULL = "hash", "null"
REDACT_WITH = (HASH, NULL)
FIELDS = ("data_in", "data_out")
KEYS = ("data_in", "data_out", "redact_keys", "redact_with", "redact_salt")
SOURCE_SECTION = "sources.zap_runs.data_policy"
SOURCE_WHERE = f"[{SOURCE_SECTION}]"


@dataclass(frozen=True)
class DataPolicy:
    """Per field (data_in, data_out): keep the text, drop it (NULL), or redact the values of
    `redact_keys` (lower-cased; matched case-insensitively at any depth) with a hash or null.

    `salt` keys the hash (HMAC-SHA256) and never shows in repr; without it values are hashed
    with plain SHA-256, which anyone can repeat on guesses (an email is easy to guess).
    """

    data_in: str = KEEP
    data_out: str = KEEP
    redact_keys: frozenset[str] = frozenset()
    redact_with: str = HASH
    salt: bytes | None = field(default=None, repr=False)
    # Payloads redact could not read (not JSON), per field: stored as NULL, never as sent.
    _invalid: Counter = field(default_factory=Counter, init=False, repr=False, compare=False)
    _modes: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _keyed: hmac.HMAC | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, allowed in (("data_in", MODES), ("data_out", MODES), ("redact_with", REDACT_WITH)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"DataPolicy.{name} must be one of {', '.join(allowed)}")
            # The module's own constants, so apply() compares by identity.
            object.__setattr__(self, name, allowed[allowed.index(value)])
        if self.salt is not None and not isinstance(self.salt, bytes):
            raise ValueError("DataPolicy.salt must be bytes or None")
        keys = frozenset(str(key).lower() for key in self.redact_keys)
        if REDACT in (self.data_in, self.data_out) and not keys:
            raise ValueError("DataPolicy: redact needs redact_keys")
        object.__setattr__(self, "redact_keys", keys)
        if self.salt is not None:  # keyed once; each hash copies it (twice as fast as hmac.digest)
            object.__setattr__(self, "_keyed", hmac.new(self.salt, digestmod=hashlib.sha256))
        self._modes.update(data_in=self.data_in, data_out=self.data_out)

    def __reduce__(self) -> tuple:
        # Copies and pickles (dlt may copy a source's arguments) are built anew: the keyed HMAC
        # does not pickle, and the counts start at zero.
        return (type(self), (self.data_in, self.data_out, self.redact_keys, self.redact_with, self.salt))

    @property
    def is_keep(self) -> bool:
        """True when both fields are stored as sent: the policy then costs nothing."""
        return self.data_in is KEEP and self.data_out is KEEP

    @property
    def invalid_counts(self) -> dict[str, int]:
        """How many payloads per field redact found not to be JSON (each was stored as NULL)."""
        return {name: self._invalid[name] for name in FIELDS}

    @classmethod
    def from_config(cls, mapping: Mapping | None, *, base: DataPolicy | None = None,
                    where: str = SOURCE_WHERE) -> DataPolicy:
        """The policy a [...data_policy] table of .dlt/config.toml (redact_salt from
        .dlt/secrets.toml) gives; `base` is the source-wide policy an account's table
        overrides field by field. A bad value raises ConfigError in one line naming `where`."""
        start = base if base is not None else cls()
        if mapping is None:
            return start
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{where} must be a table (data_in, data_out, redact_keys, "
                              "redact_with), not a single value: see docs/data-policy.md.")
        unknown = sorted(str(key) for key in mapping if key not in KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown key {unknown[0][:60]!r}: use "
                              f"{', '.join(KEYS)} (see docs/data-policy.md).")
        modes = {name: _choice(mapping, name, MODES, where, getattr(start, name))
                 for name in FIELDS}
        redact_with = _choice(mapping, "redact_with", REDACT_WITH, where, start.redact_with)
        keys = _keys(mapping["redact_keys"], where) if "redact_keys" in mapping else start.redact_keys
        salt = _salt(mapping["redact_salt"], where) if "redact_salt" in mapping else start.salt
        redacted = [name for name in FIELDS if modes[name] == REDACT]
        if redacted and not keys:
            raise ConfigError(f"{redacted[0]} = \"redact\" under {where} needs redact_keys, e.g. "
                              "redact_keys = [\"email\", \"phone\"] (or use drop).")
        return cls(data_in=modes["data_in"], data_out=modes["data_out"], redact_keys=keys,
                   redact_with=redact_with, salt=salt)

    def apply(self, field: str, text: str | None) -> str | None:
        """The text to store for `field` ("data_in" or "data_out"): keep returns `text` itself,
        drop returns None, redact returns compact JSON text with the value of every key in
        redact_keys replaced (the original text when no key matched). Under redact, text that
        is not valid JSON is never stored: it becomes None and is counted in invalid_counts."""
        mode = self._modes.get(field)
        if mode is KEEP:
            return text
        if mode is None:
            raise ValueError(f"DataPolicy applies to data_in or data_out, not {field!r}")
        if mode is DROP or text is None:
            return None
        return self._redact(field, text)

    def apply_row(self, row: dict) -> dict:
        """`row` with its data_in and data_out set by the policy (in place, and returned)."""
        if self.is_keep:
            return row
        for name in FIELDS:
            if name in row:
                row[name] = self.apply(name, row[name])
        return row

    def hash_value(self, value: object) -> str:
        """The text redact puts in place of `value`: a hash of its canonical JSON (keys
        sorted, compact), so equal values hash alike and analysts can still join and count."""
        data = _canonical(value)
        if self._keyed is not None:
            keyed = self._keyed.copy()
            keyed.update(data)
            return "hmac-sha256:" + keyed.hexdigest()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def _redact(self, field: str, text: str) -> str | None:
        mask = self.hash_value if self.redact_with == HASH else _null
        try:
            value = _parse(text)
            if type(value) in _CONTAINERS and _mask(value, self.redact_keys, mask):
                return json_bytes(value).decode()
            return text
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
            self._invalid[field] += 1
            if self._invalid[field] == 1:
                logger.warning("%s of a run is not JSON redact can read; it is stored as NULL "
                               "(so is every such %s: see invalid_counts)", field, field)
            return None


def config_table(section: str = SOURCE_SECTION) -> Mapping | object | None:
    """The [section] table as dlt resolves it, for DataPolicy.from_config: config.toml and
    secrets.toml merged, each known key also from its environment variable (SOURCES__ZAP_RUNS__
    DATA_POLICY__DATA_OUT). Asking dlt for the table itself returns only the first provider's,
    so a redact_salt in secrets.toml would hide the modes in config.toml. None when unset; a
    single value is returned as is (from_config says it must be a table)."""
    *path, name = section.split(".")
    table: dict = {}
    for provider in dlt.config.config_providers:  # the first provider wins, as in dlt
        value, _ = provider.get_value(name, None, None, *path)
        if isinstance(value, Mapping):
            table.update((key, item) for key, item in value.items() if key not in table)
        elif value is not None and not table:
            return value
    for key in KEYS:
        # Through dlt.secrets: a value looked up as a secret never shows in dlt's trace.
        value = dlt.secrets.get(f"{section}.{key}")
        if value is not None:
            table[key] = value
    return table or None


_CONTAINERS = (dict, list)


def _mask(node: dict | list, keys: frozenset[str], mask) -> bool:
    """Replace, in place, the value of every key in `keys` under `node`; True if any was."""
    changed = False
    if type(node) is dict:
        for key, value in node.items():
            if key.lower() in keys:
                node[key] = mask(value)
                changed = True
            elif type(value) in _CONTAINERS:
                changed = _mask(value, keys, mask) or changed
    else:
        for item in node:
            if type(item) in _CONTAINERS:
                changed = _mask(item, keys, mask) or changed
    return changed


def _null(value: object) -> None:
    return None


def _parse(text: str) -> object:
    """JSON text as a value with numbers exact (msgspec; the standard parser for lone
    surrogates and huge numbers); ValueError when it is not JSON, NaN and Infinity included,
    RecursionError when it nests deeper than Python recurses (about 1,000 levels)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text, parse_constant=_not_json)


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _canonical(value: object) -> bytes:
    """One text per value: keys sorted, no spaces (the standard writer for what orjson refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _choice(mapping: Mapping, name: str, allowed: tuple[str, ...], where: str, default: str) -> str:
    if name not in mapping:
        return default
    value = mapping[name]
    chosen = value.strip().lower() if isinstance(value, str) else None
    if chosen not in allowed:
        shown = repr(value)[:40] if isinstance(value, str) else f"a {type(value).__name__}"
        raise ConfigError(f"{name} under {where} is {shown}: use "
                          f"{', '.join(allowed[:-1])} or {allowed[-1]}.")
    return chosen


def _keys(value: object, where: str) -> frozenset[str]:
    if isinstance(value, str):  # an environment variable holds a list as its JSON text
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    keys = list(value) if isinstance(value, (list, tuple, set, frozenset)) else None
    if keys is None or not all(isinstance(key, str) and key.strip() for key in keys):
        raise ConfigError(f"redact_keys under {where} must be a list of key names, e.g. "
                          "redact_keys = [\"email\", \"phone\"].")
    return frozenset(key.lower() for key in keys)


def _salt(value: object, where: str) -> bytes:
    # Never shown: a message names the field, not its value.
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes) or not value.strip():
        raise ConfigError(f"redact_salt under {where} must be a non-empty string: set a long "
                          "random value in .dlt/secrets.toml, or remove it to hash unkeyed.")
    return value
