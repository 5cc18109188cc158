"""JSON values kept exact: bodies parsed fast without rounding, values written back as text."""

from __future__ import annotations

import json

import orjson
import pyarrow as pa

# orjson rounds integers beyond 64 bits to floats; int64 has at most 19 digits, so a body with
# no run of 19 digits has none (a run inside a string only costs the slower parser). Mapping
# every digit to "0" and everything else to " " makes the check one C-speed substring search.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def json_loads(body: bytes) -> object:
    """JSON with every number exact: orjson, unless an integer may not fit 64 bits."""
    if _LONG_DIGIT_RUN not in body.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # lone surrogates and other forms only the standard parser accepts
    return json.loads(body)


def json_text(run: dict, key: str) -> str | None:
    """The exact JSON text of a value; SQL NULL only when the key is absent."""
    if key not in run:
        return None
    try:
        return orjson.dumps(run[key]).decode()
    except TypeError:  # integers beyond 64 bits, lone surrogates
        return json.dumps(run[key], ensure_ascii=False, separators=(",", ":"))


def json_column(runs: list[dict], key: str) -> pa.Array:
    """`json_text` of one key over many runs, as an Arrow string column."""
    try:
        texts = [orjson.dumps(run[key]) if key in run else None for run in runs]
    except TypeError:
        texts = [None if (text := json_text(run, key)) is None else text.encode() for run in runs]
    return pa.array(texts, pa.binary()).cast(pa.string())
