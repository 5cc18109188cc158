"""API run objects into warehouse rows, built column by column as Arrow tables.

Runs become rows of `zap_runs`; their steps become rows of dlt's nested table
`zap_runs__steps`, linked the way dlt's own normalizer links them (`_dlt_parent_id` and
`_dlt_root_id` are the run row's `_dlt_id`, `_dlt_list_idx` the step's position). Building the
columns here, rather than handing dicts to dlt's Python normalizer, is what lets a backfill
run at tens of thousands of runs a second.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate, chain

import msgspec
import pendulum
import pyarrow as pa
import pyarrow.compute as pc

from .apirun import ApiRun
from .errors import ApiError, malformed_run

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
    # The columns dlt's relational normalizer would add, with the same hints.
    "_dlt_load_id": {"data_type": "text", "nullable": False},
    "_dlt_id": {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
}
STEP_COLUMNS: dict[str, dict] = {
    "status": {"data_type": "text", "nullable": True},
    "start_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "_dlt_root_id": {"data_type": "text", "nullable": False, "root_key": True},
    "_dlt_parent_id": {"data_type": "text", "nullable": False, "parent_key": True},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
}
TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "timestamp": TIMESTAMP}
RUN_SCHEMA = pa.schema([pa.field(n, _ARROW_TYPES[c["data_type"]], nullable=c["nullable"])
                        for n, c in RUN_COLUMNS.items()])
STEP_SCHEMA = pa.schema([pa.field(n, _ARROW_TYPES[c["data_type"]], nullable=c["nullable"])
                         for n, c in STEP_COLUMNS.items()])


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


def row_ids(count: int) -> list[str]:
    """Random row keys for `_dlt_id` (96 bits each), made in one go rather than one by one."""
    text = base64.b64encode(os.urandom(12 * count)).decode()
    return [text[i:i + 16] for i in range(0, 16 * count, 16)]


@dataclass(slots=True)
class RunKey:
    """What the sync's bookkeeping needs of a run: its open-run anchors and the cursor."""

    id: str
    zap_id: int
    status: str
    start_time: datetime | None


class RowBatch:
    """Runs gathered page by page and handed to dlt as two Arrow tables, column by column.

    Each column is built in bulk; only when a bulk step meets a value it cannot read are the
    runs checked one by one, so that the error names the run and the request it came from.
    """

    def __init__(self) -> None:
        self.runs: list[ApiRun] = []
        self.keys: list[RunKey] = []
        self.fetched_at: list[datetime] = []
        self.requests: list[str] = []
        self.json_bytes = 0

    def __len__(self) -> int:
        return len(self.runs)

    def full(self, max_runs: int, max_json_bytes: int) -> bool:
        """Whether to hand the batch over: by runs, or by the size of their data_in/data_out."""
        return len(self.runs) >= max_runs or self.json_bytes >= max_json_bytes

    def add_page(self, runs: list[ApiRun], fetched_at: datetime, request: str) -> list[RunKey]:
        """Take one page of runs; what the sync's bookkeeping needs of each comes back."""
        try:
            keys = [RunKey(*fields) for fields in zip(
                [run.id for run in runs], _zap_ids([run.zap_id for run in runs]),
                [run.status for run in runs], [_time(run.start_time) for run in runs],
                strict=True)]
        except ValueError:
            raise _first_malformed(runs, [request] * len(runs)) from None
        self.runs += runs
        self.keys += keys
        self.json_bytes += sum([len(run.data_in) + len(run.data_out) for run in runs])
        self.fetched_at += [fetched_at] * len(runs)
        self.requests += [request] * len(runs)
        return keys

    def take(self, load_id: str) -> tuple[pa.Table, pa.Table]:
        """The gathered runs and their steps as Arrow tables; the batch is empty again."""
        runs, count = self.runs, len(self.runs)
        keys = pa.array(row_ids(count), pa.string())
        step_lists = [run.steps or () for run in runs]
        counts = list(map(len, step_lists))
        flat = list(chain.from_iterable(step_lists))
        try:
            run_table = pa.Table.from_arrays([
                # id, zap_id (as an integer) and status were read and checked by add_page.
                pa.array([key.id for key in self.keys], pa.string()),
                pa.array([key.zap_id for key in self.keys], pa.int64()),
                pa.array([run.zap_title for run in runs], pa.string()),
                pa.array([key.status for key in self.keys], pa.string()),
                _times([run.start_time for run in runs]),
                _times([run.end_time for run in runs]),
                _raw_json([run.data_in for run in runs]),
                _raw_json([run.data_out for run in runs]),
                pa.array(self.fetched_at, TIMESTAMP),
                pa.array([load_id] * count, pa.string()),
                keys,
            ], schema=RUN_SCHEMA)
            status = pa.array([step.status for step in flat], pa.string())
            start = _times([step.start_time for step in flat])
        except (ValueError, pa.ArrowException):
            raise _first_malformed(runs, self.requests) from None
        positions, indexes = _list_positions(counts)
        parents = keys.take(positions)
        step_table = pa.Table.from_arrays([
            status, start, parents, parents, indexes,
            pc.binary_join_element_wise(parents, indexes.cast(pa.string()), "."),
        ], schema=STEP_SCHEMA)
        self.__init__()
        return run_table, step_table


def _list_positions(counts: list[int]) -> tuple[pa.Array, pa.Array]:
    """For lists of these lengths laid end to end: each item's list, and its place in it."""
    starts = pa.array([0, *accumulate(counts)], pa.int32())
    total = starts[-1].as_py()
    positions = pc.list_parent_indices(pa.ListArray.from_arrays(starts, pa.nulls(total)))
    ones = pc.fill_null(pa.nulls(total, pa.int64()), 1)
    indexes = pc.subtract(pc.subtract(pc.cumulative_sum(ones), 1), starts.take(positions))
    return positions, indexes


def _zap_ids(values: list) -> list[int]:
    if all(type(value) is int for value in values):
        return values
    out = []
    for value in values:  # numeric strings are accepted, as the old API sent them
        if isinstance(value, bool) or not (isinstance(value, int) or (
                isinstance(value, str) and value.strip().lstrip("-").isdigit())):
            raise ValueError("zap_id is not an integer")
        out.append(int(value))
    return out


def _raw_json(values: list[msgspec.Raw]) -> pa.Array:
    """data_in/data_out as the exact JSON text the API sent; absent is NULL, JSON null "null".

    The texts are joined into one buffer and wrapped as an Arrow column as they are (checked
    to be UTF-8), rather than copied one Python object at a time.
    """
    lengths = [len(value) for value in values]
    offsets = [0, *accumulate(lengths)]
    if offsets[-1] >= 2**31:  # beyond a string column's 32-bit offsets: let Arrow chunk it
        return pa.array([bytes(value) if len(value) else None for value in values],
                        pa.binary()).cast(pa.string())
    texts = pa.StringArray.from_buffers(len(values), pa.array(offsets, pa.int32()).buffers()[1],
                                        pa.py_buffer(b"".join(values)))
    texts.validate(full=True)
    return pc.if_else(pa.array([n == 0 for n in lengths], pa.bool_()),
                      pa.scalar(None, pa.string()), texts)


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


def _times(values: list[str | None]) -> pa.Array:
    """Timestamps cast by Arrow in one go; forms Arrow does not read go through parse_time."""
    try:
        return pa.array(values, pa.string()).cast(TIMESTAMP)
    except pa.ArrowInvalid:
        return pa.array([parse_time(value) for value in values], TIMESTAMP)


def check_run(run: ApiRun) -> None:
    """Raise ValueError naming what in one run the bulk steps could not read."""
    _zap_ids([run.zap_id])
    times = [("start_time", run.start_time), ("end_time", run.end_time)]
    times += [("a step's start_time", step.start_time) for step in run.steps or ()]
    for name, value in times:
        try:
            parse_time(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


def _first_malformed(runs: list[ApiRun], requests: list[str]) -> ApiError:
    for run, request in zip(runs, requests, strict=True):
        try:
            check_run(run)
        except ValueError as exc:
            return malformed_run(request, run.id, exc)
    return malformed_run(requests[0] if requests else "GET /v2/zap-runs", None, "unreadable fields")
