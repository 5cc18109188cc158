"""`status`'s reading of the sync log, the accounts' state rows and the data: the Status of a
dataset, or of one account."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

import dlt

from ..alerts.delivery import failing_channels
from ..common.errors import ConfigError, ZapRunsError, first_line
from ..warehouse.synclog import TABLE, account_states, last_outcomes, last_pass, newest_run_start
from .freshness import read_freshness
from .lastpass import pass_facts
from .status import Status

LISTED = 10  # names an unknown --account's message lists; more are pointed to


class OneConnection:
    """`pipeline` whose sql_client() is one client, opened once: status reads the log, the
    states, the runs and the alerts over one connection (each new dlt client resolves its
    configuration anew, about 55 ms)."""

    def __init__(self, pipeline: dlt.Pipeline, client: object) -> None:
        self._pipeline, self._client = pipeline, client

    def __getattr__(self, name: str) -> object:
        return getattr(self._pipeline, name)

    @contextmanager
    def sql_client(self, *args: object, **kwargs: object) -> Iterator[object]:
        if args or kwargs:  # another schema's client: the pipeline's own
            with self._pipeline.sql_client(*args, **kwargs) as client:
                yield client
        else:
            yield self._client


def read_status(pipeline: dlt.Pipeline, max_age_hours: float, account: str | None = None,
                now: datetime | None = None, configured: set[str] | None = None) -> Status:
    """The Status of the pipeline's dataset (`account`: of that account alone; `configured`:
    the account names the configuration holds, when known), each account's freshness judged
    against the newest pass; an unknown account is a ConfigError that says which accounts there
    are."""
    with ExitStack() as opened:
        try:
            client = opened.enter_context(pipeline.sql_client())
        except Exception:  # noqa: BLE001 - no dataset or no server: the reads below say which
            return _read_status(pipeline, max_age_hours, account, now, configured)
        return _read_status(OneConnection(pipeline, client), max_age_hours, account, now,
                            configured)


def _read_status(pipeline: dlt.Pipeline, max_age_hours: float, account: str | None,
                 now: datetime | None, configured: set[str] | None) -> Status:
    where = f"{pipeline.destination.destination_name} dataset {pipeline.dataset_name!r}"
    try:
        accounts = account_states(pipeline)
        newest_pass = last_pass(pipeline)
        if account is None:
            rows = newest_pass
            _, success = last_outcomes(pipeline)
        else:
            last, success = last_outcomes(pipeline, account)
            rows = [last] if last else []
    except Exception as exc:  # noqa: BLE001 - no log table yet
        raise ZapRunsError(f"no sync has been recorded in {where} yet ({first_line(exc, 120)}); "
                           "run a sync first.") from None
    try:
        newest = newest_run_start(pipeline, account)
    except Exception:  # noqa: BLE001 - no run loaded yet (the first syncs failed): "never"
        newest = None
    if account is not None and account not in {a["account_id"] for a in accounts}:
        raise ConfigError(unknown_account(account, [a["account_id"] for a in accounts], where,
                                          pipeline.dataset_name))
    started = pass_facts(newest_pass)
    try:
        channels = failing_channels(pipeline) if account is None else []
    except Exception:  # noqa: BLE001 - a table it cannot read tells nothing of the data
        channels = []
    return Status(where, now or datetime.now(UTC), max_age_hours, pass_facts(rows), success,
                  newest, accounts, account, frozenset(configured) if configured else None,
                  read_freshness(pipeline), started and started.started_at, channels)


def unknown_account(name: str, known: list[str], where: str, dataset: str) -> str:
    """One line: no such account, and how to see the ones there are."""
    head = f"no account {name!r} in the sync log of {where}"
    if not known:
        return f"{head}: it holds no account yet; run a sync first."
    if len(known) <= LISTED:
        return f"{head}; its accounts: {', '.join(known)}."
    close = difflib.get_close_matches(name, known, n=3)
    guess = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (f"{head}{guess} It holds {len(known):,} accounts: `select distinct account_id from "
            f"{dataset}.{TABLE}` lists them.")
