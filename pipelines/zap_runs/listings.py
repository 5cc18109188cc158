"""`statuses=` listings: every run of the account in some statuses, in ceil(runs / page) requests.

A listing finds what changed among the watched runs without re-reading them one by one: a
watched open run missing from the listing of open runs is no longer open (it settled, or moved
to a status the contract does not list, or was purged), and only those are re-read.
"""

from __future__ import annotations

from datetime import datetime

from . import settings
from .client import ZapierClient
from .clock import iso
from .paging import fetch_window
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
    window = {"from_date": iso(span[0]), "to_date": iso(span[1]), "limit": "1"}
    every = client.get_runs(window).count
    listed = client.get_runs({**window, "statuses": LISTED}).count
    return None if every is None or listed is None else every - listed

