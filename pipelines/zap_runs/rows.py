"""API run objects into warehouse rows: parsed datetimes, JSON kept exactly as JSON text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pendulum

from .errors import ApiError

# data_in/data_out hold any JSON value. dlt's json type diverts scalars into variant columns
# and re-parses strings, so each is stored as its exact JSON text; SQL reads it with ::json.
RUN_COLUMNS: dict[str, dict] = {
    "id": {"data_type": "text", "nullable": False},
    "zap_id": {"data_type": "bigint", "nullable": False},
    "zap_title": {"data_type": "text", "nullable": True},
    "status": {"data_type": "text", "nullable": False},
    "start_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "end_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "data_in": {"data_type": "text", "nullable": True},
    "data_out": {"data_type": "text", "nullable": True},
    # When the sync read this version of the run; the newest read wins a duplicate within a load.
    "fetched_at": {"data_type": "timestamp", "timezone": True, "nullable": False,
                   "dedup_sort": "desc"},
}
STEP_COLUMNS: dict[str, dict] = {
    "status": {"data_type": "text", "nullable": True},
    "start_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
}


def parse_time(value: object) -> datetime | None:
    """An API timestamp as an aware UTC datetime (never compared as text)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a date-time string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = pendulum.parse(value)  # odd but valid ISO 8601 forms
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_text(run: dict, key: str) -> str | None:
    """The exact JSON text of a value; SQL NULL only when the key is absent."""
    if key not in run:
        return None
    return json.dumps(run[key], ensure_ascii=False, separators=(",", ":"))


def to_row(run: dict, fetched_at: datetime, request: str) -> dict:
    """One warehouse row (with its steps) from one API run; a malformed run names the request."""
    try:
        steps = run.get("steps") or []
        if not isinstance(steps, list):
            raise ValueError("steps is not a list")
        status = run.get("status")
        if not isinstance(status, str):
            raise ValueError("status is missing")
        zap_id = run.get("zap_id")
        if isinstance(zap_id, bool) or not (isinstance(zap_id, int) or (
                isinstance(zap_id, str) and zap_id.strip().lstrip("-").isdigit())):
            raise ValueError("zap_id is not an integer")
        return {
            "id": run["id"],
            "zap_id": int(zap_id),
            "zap_title": run.get("zap_title"),
            "status": status,
            "start_time": parse_time(run.get("start_time")),
            "end_time": parse_time(run.get("end_time")),
            "steps": [{"status": s.get("status"), "start_time": parse_time(s.get("start_time"))}
                      for s in steps],
            "data_in": json_text(run, "data_in"),
            "data_out": json_text(run, "data_out"),
            "fetched_at": fetched_at,
        }
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ApiError(f"{request} returned a malformed run {str(run.get('id'))[:40]!r}: {exc}. "
                       "Nothing of this sync was committed and its cursor did not move; report "
                       "the run to Zapier.") from None
