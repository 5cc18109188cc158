"""`statuses=` listings: every run of the account in some statuses, in ceil(runs / page) requests.

A listing finds what changed among the watched runs without re-reading them one by one: a
watched open run missing from the listing of open runs is no longer open (it settled, or moved
to a status the contract does not list, or was purged), and only those are re-read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..api.client import ZapierClient
from ..api.paging import fetch_window
from ..common import settings
from ..common.clock import iso
from .rechecks import Reread, Take
from .watch import Anchors, Watched

OPEN = ",".join(sorted(settings.OPEN_STATUSES))
ERROR = "error"
LISTED = ",".join(sorted(settings.LISTED_STATUSES))


def list_statuses(client: ZapierClient, statuses: str, span: tuple[datetime, datetime],
                  watched: dict[str, Watched], page_limit: int, take: Take,
                  errors_since: datetime, seen_per_zap: dict[int, int] | None = None) -> Reread:
    """Rows of every run in `statuses` triggered in `span`; returns the ids it listed.
    `seen_per_zap` counts the listed runs of each zap (their rate plans later re-reads)."""
    filters = {"statuses": statuses, "from_date": iso(span[0]), "to_date": iso(span[1])}
    anchors = Anchors(span, errors_since, neighbours=False)
    found: set[str] = set()
    for runs, request in fetch_window(client, filters, page_limit):
        found.update(run.id for run in runs)
        if seen_per_zap is not None:
            for run in runs:
                seen_per_zap[run.zap_id] = seen_per_zap.get(run.zap_id, 0) + 1
        yield take(runs, request, anchors)[0]
    return found


def unlisted_count(client: ZapierClient, span: tuple[datetime, datetime]) -> int | None:
    """How many runs triggered in `span` are in a status `statuses=` cannot name, now.

    Two one-run requests: all runs, and the runs in every status the contract lists; the
    difference is the rest. None when the server does not say how many runs it has.
    """
    every = count_runs(client, span)
    listed = count_runs(client, span, LISTED)
    return None if every is None or listed is None else every - listed


def count_runs(client: ZapierClient, span: tuple[datetime, datetime],
               statuses: str | None = None) -> int | None:
    """How many runs were triggered in `span` (in `statuses`, if given): one one-run request;
    None when the server does not say."""
    window = {"from_date": iso(span[0]), "to_date": iso(span[1]), "limit": "1"}
    return client.get_runs({**window, "statuses": statuses} if statuses else window).count



def unlisted_changes(client: ZapierClient, runs: dict[str, Watched],
                     span: tuple[datetime, datetime], worth_probing: Callable[[dict], bool]
                     ) -> set[str]:
    """The runs among `runs` (all seen in an unlisted status, triggered in `span`) that may have
    changed, found by counting: a part of the span whose count of unlisted runs matches the
    watched runs in it is clean; one that does not is halved and counted again, until a part is
    cheaper to re-read than to count (`worth_probing` says no). One count of a half tells the
    other half's too, so each halving costs one probe."""
    count = unlisted_count(client, span)
    if count is None:
        return set(runs)
    return _bisect(client, runs, span, count, worth_probing)


def _bisect(client: ZapierClient, runs: dict[str, Watched], span: tuple[datetime, datetime],
            count: int, worth_probing: Callable[[dict], bool]) -> set[str]:
    if count == len(runs):
        return set()
    split = _clean_split(runs)
    if split is None or not worth_probing(runs):
        return set(runs)
    left = {k: v for k, v in runs.items() if v.triggered_by() < split}
    right = {k: v for k, v in runs.items() if k not in left}
    left_count = unlisted_count(client, (span[0], split))
    if left_count is None:
        return set(runs)
    return (_bisect(client, left, (span[0], split), left_count, worth_probing)
            | _bisect(client, right, (split, span[1]), count - left_count, worth_probing))


def _clean_split(runs: dict[str, Watched]) -> datetime | None:
    """A time near the middle of the runs that no run's possible trigger times straddle."""
    ordered = sorted(runs.values(), key=lambda v: v.triggered_by())
    middle = len(ordered) // 2
    for offset in range(len(ordered)):
        for pos in (middle - offset, middle + offset):
            if not 0 < pos < len(ordered):
                continue
            split = ordered[pos - 1].triggered_by() + timedelta(milliseconds=1)
            if ordered[pos].triggered_by() >= split and all(
                    v.triggered_by() < split or v.wide_from >= split for v in ordered):
                return split
    return None
