"""The API's run object as the sync reads it: typed, with data_in/data_out kept as raw JSON.

A page is decoded straight into these structs by msgspec, which checks the types on the way
and leaves data_in and data_out as the exact JSON text the API sent, never turned into Python
objects and back. A page that does not fit (a field of the wrong type, an odd body) is
decoded generically instead and each run converted with a check that says what is wrong.
"""

from __future__ import annotations

import msgspec

from .jsonvalues import json_bytes

ABSENT = msgspec.Raw()  # an absent data_in/data_out (SQL NULL), unlike JSON null (b"null")
# Runs and steps hold only strings, numbers and raw JSON, never cycles: with gc=False the
# garbage collector does not walk the hundreds of thousands of them a backfill makes.


class ApiStep(msgspec.Struct, gc=False):
    status: str | None = None
    start_time: str | None = None


class ApiRun(msgspec.Struct, gc=False):
    id: str
    zap_id: int | str
    status: str
    zap_title: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    steps: list[ApiStep] | None = None
    data_in: msgspec.Raw = ABSENT
    data_out: msgspec.Raw = ABSENT


class ApiMeta(msgspec.Struct):
    count: int | None = None


class ApiLinks(msgspec.Struct):
    next: str | None = None


class ApiPage(msgspec.Struct):
    data: list[ApiRun] = []
    meta: ApiMeta | None = None
    links: ApiLinks | None = None


# The contract wraps a page in an array; clients commonly see the plain object. Both decode.
PAGE_DECODER = msgspec.json.Decoder(ApiPage | list[ApiPage])


class MalformedRun(Exception):
    """A run whose fields break the contract; the client names the request that returned it."""

    def __init__(self, run_id: object, problem: str) -> None:
        super().__init__(problem)
        self.run_id, self.problem = run_id, problem


def run_from_dict(run: dict) -> ApiRun:
    """An ApiRun from a generically decoded run, or MalformedRun saying what is wrong."""
    run_id = run.get("id")
    steps = run.get("steps")
    if steps is not None and not isinstance(steps, list):
        raise MalformedRun(run_id, "steps is not a list")
    if not isinstance(run.get("status"), str):
        raise MalformedRun(run_id, "status is missing")
    zap_id = run.get("zap_id")
    if isinstance(zap_id, bool) or not isinstance(zap_id, int | str):
        raise MalformedRun(run_id, "zap_id is not an integer")
    for name in ("zap_title", "start_time", "end_time"):
        if not isinstance(run.get(name), str | None):
            raise MalformedRun(run_id, f"{name} is not a string")
    api_steps = []
    for step in steps or []:
        if not isinstance(step, dict):
            raise MalformedRun(run_id, "a step is not an object")
        status, start = step.get("status"), step.get("start_time")
        if not isinstance(status, str | None) or not isinstance(start, str | None):
            raise MalformedRun(run_id, "a step's status or start_time is not a string")
        api_steps.append(ApiStep(status, start))
    return ApiRun(run_id, zap_id, run["status"], run.get("zap_title"), run.get("start_time"),
                  run.get("end_time"), api_steps,
                  *(msgspec.Raw(json_bytes(run[key])) if key in run else ABSENT
                    for key in ("data_in", "data_out")))
