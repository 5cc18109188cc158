"""Offset paging over one [from, to) window that survives capped, short and shifting pages."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from .client import ZapierClient

log = logging.getLogger(__name__)

# A window whose pages did not add up to the server's count is paged again, this many times.
MAX_PASSES = 3


def describe(params: dict[str, str]) -> str:
    return "GET /v2/zap-runs?" + "&".join(f"{k}={v}" for k, v in params.items())


def fetch_window(client: ZapierClient, filters: dict[str, str], page_limit: int
                 ) -> Iterator[tuple[list[dict], str]]:
    """Every run in the window, page by page, with the request that fetched it.

    The offset moves by what the server actually returned (it may cap `limit` silently or
    serve short pages); paging ends on an empty page or once meta.count is reached, whatever
    links.next says. If the count moved while paging, or the distinct runs seen fall short
    of it (runs shifted between offsets), the window is paged again and only runs not yet
    seen are passed on.
    """
    seen: set[str] = set()
    count: int | None = None
    for attempt in range(1, MAX_PASSES + 1):
        offset = 0
        counts: set[int] = set()
        while True:
            params = {**filters, "limit": str(page_limit), "offset": str(offset)}
            page = client.get_runs(params)
            if page.count is not None:
                count = page.count
                counts.add(count)
            if not page.data:
                break
            fresh = [run for run in page.data if run["id"] not in seen]
            seen.update(run["id"] for run in fresh)
            if fresh:
                yield fresh, describe(params)
            offset += len(page.data)
            if count is not None and offset >= count:
                break
            if count is None and page.next_url is None:
                break
        # A count that moved while paging means runs shifted between offsets: page again.
        if count is None or (len(seen) >= count and len(counts) <= 1):
            return
        if attempt < MAX_PASSES:
            log.warning("%s: the API's count moved (%s) or fell short of the %d runs seen; "
                        "paging the window again", describe(filters),
                        sorted(counts), len(seen))
    log.warning("%s: %d runs seen, the API counts %d after %d passes; runs may have been "
                "purged or added meanwhile", describe(filters), len(seen), count, MAX_PASSES)
