"""API run objects into the rows dlt loads: one dict per run, its steps as a nested list.

dlt's own normalizer turns each run's `steps` list into rows of the nested table
`zap_runs__steps` and links them to the run itself (`_dlt_*` columns are dlt's, never ours).
Each step row also carries the natural keys analysts join on: `account_id`, `run_id`,
`step_number` (from 1, as Zapier numbers steps) and `zap_id`. Run and zap ids are unique only
within an account, so `account_id` is part of every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pendulum

from ..api.runs import ApiRun
from ..common.errors import ApiError, malformed_run

if TYPE_CHECKING:
    from .policy import DataPolicy

# data_in/data_out hold any JSON value. dlt's json type diverts scalars into variant columns
# and re-parses strings, so each is stored as its exact JSON text; SQL reads it with ::json.
RUN_COLUMNS: dict[str, dict] = {
    # The Zapier user the run belongs to (accounts/entries.py); 'default' for a single account.
    "account_id": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "zap_id": {"data_type": "bigint", "nullable": False},
    "zap_title": {"data_type": "text", "nullable": True},
    "status": {"data_type": "text", "nullable": False},
    "start_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "end_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "data_in": {"data_type": "text", "nullable": True},
    "data_out": {"data_type": "text", "nullable": True},
    # When the sync read this version of the run.
    "fetched_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
}
# Declared, not inferred: an all-null column would not be created at all.
STEP_COLUMNS: dict[str, dict] = {
    "account_id": {"name": "account_id", "data_type": "text", "nullable": False},
    "run_id": {"name": "run_id", "data_type": "text", "nullable": False},
    "step_number": {"name": "step_number", "data_type": "bigint", "nullable": False},
    "zap_id": {"name": "zap_id", "data_type": "bigint", "nullable": False},
    "status": {"name": "status", "data_type": "text", "nullable": True},
    "start_time": {"name": "start_time", "data_type": "timestamp", "timezone": True, "nullable": True},
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


def _time(value: str | None) -> datetime | None:
    """parse_time, with the common case (UTC with a Z or +00:00) first."""
    if value is not None:
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is UTC:
                return parsed
        except ValueError:
            pass
    return parse_time(value)


@dataclass(slots=True)
class RunKey:
    """What the sync's bookkeeping needs of a run: where to watch it again, and the cursor."""

    id: str
    zap_id: int
    status: str
    start_time: datetime | None
    end_time: datetime | None = None


def zap_id_of(value: object) -> int:
    """zap_id as an integer; numeric strings are accepted, as the old API sent them."""
    if type(value) is int:
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError("zap_id is not an integer")


def _json_text(raw: bytes) -> str | None:
    """data_in/data_out as the exact JSON text the API sent; absent is NULL, JSON null "null"."""
    return bytes(raw).decode() if len(raw) else None


def run_row(run: ApiRun, fetched_at: datetime, account_id: str = "default",
            policy: DataPolicy | None = None) -> tuple[dict, RunKey]:
    """One run as a row with its nested steps, and its bookkeeping key; ValueError if unreadable.
    `policy` (policy.py) is applied to data_in/data_out here, before anything is written."""
    zap_id = zap_id_of(run.zap_id)
    start = _time(run.start_time)
    # No steps and null steps both leave the run without step rows (an empty list, so dlt
    # does not take a null `steps` for a column of zap_runs).
    steps = [{"account_id": account_id, "run_id": run.id, "step_number": number, "zap_id": zap_id,
              "status": step.status, "start_time": _time(step.start_time)}
             for number, step in enumerate(run.steps or (), 1)]
    end = _time(run.end_time)
    data_in, data_out = _json_text(run.data_in), _json_text(run.data_out)
    if policy is not None and not policy.is_keep:
        data_in, data_out = policy.apply("data_in", data_in), policy.apply("data_out", data_out)
    row = {"account_id": account_id, "id": run.id, "zap_id": zap_id, "zap_title": run.zap_title,
           "status": run.status, "start_time": start, "end_time": end,
           "data_in": data_in, "data_out": data_out, "fetched_at": fetched_at, "steps": steps}
    return row, RunKey(run.id, zap_id, run.status, start, end)


def page_rows(runs: list[ApiRun], fetched_at: datetime, request: str,
              account_id: str = "default", policy: DataPolicy | None = None
              ) -> tuple[list[dict], list[RunKey]]:
    """A page of runs as rows and keys; a run that breaks the contract names itself and the
    request it came from."""
    rows, keys = [], []
    for run in runs:
        try:
            row, key = run_row(run, fetched_at, account_id, policy)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise _malformed(request, run, exc) from None
        rows.append(row)
        keys.append(key)
    return rows, keys


def _malformed(request: str, run: ApiRun, exc: Exception) -> ApiError:
    problem = str(exc)
    if not isinstance(exc, ValueError) or "zap_id" not in problem:
        for name, value in [("start_time", run.start_time), ("end_time", run.end_time)] + [
                ("a step's start_time", step.start_time) for step in run.steps or ()]:
            try:
                parse_time(value)
            except ValueError as bad:
                problem = f"{name}: {bad}"
                break
    return malformed_run(request, run.id, problem)
