"""JSON values kept exact: bodies parsed fast without rounding, values written back as text."""

from __future__ import annotations

import json

import msgspec
import orjson
import pyarrow as pa


def json_loads(body: bytes) -> object:
    """JSON with every number exact, fast: msgspec keeps integers of any size (orjson rounds
    those beyond 64 bits to floats). The standard parser takes what msgspec refuses but JSON
    readers accept: lone surrogates in strings, numbers beyond a double's range."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
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
