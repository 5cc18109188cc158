"""JSON values kept exact: bodies parsed fast without rounding, values written back as text."""

from __future__ import annotations

import json

import msgspec
import orjson


def json_loads(body: bytes) -> object:
    """JSON with every number exact, fast: msgspec keeps integers of any size (orjson rounds
    those beyond 64 bits to floats). The standard parser takes what msgspec refuses but JSON
    readers accept: lone surrogates in strings, numbers beyond a double's range."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


def json_bytes(value: object) -> bytes:
    """A value as JSON text (UTF-8): orjson, or the standard writer for what orjson refuses
    (integers beyond 64 bits; lone surrogates, which only an ASCII escape can carry)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()

