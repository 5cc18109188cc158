"""Offset paging over one [from, to) window that survives capped, short and shifting pages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .client import ZapierClient, describe
from .runs import ApiRun

log = logging.getLogger(__name__)

# A window whose pages did not add up to the server's count is paged again, this many times.
MAX_PASSES = 3


@dataclass
class PageCap:
    """At most `pages` pages for a window: when its first page's count says it needs more,
    paging stops there and `cut` says so (the caller reads what it wanted some other way)."""

    pages: int
    cut: bool = False


def fetch_window(client: ZapierClient, filters: dict[str, str], page_limit: int,
                 lookahead: bool | None = None, cap: PageCap | None = None
                 ) -> Iterator[tuple[list[ApiRun], str]]:
    """Every run in the window, page by page, with the request that fetched it.

    The offset moves by what the server actually returned (it may cap `limit` silently or
    serve short pages); paging ends on an empty page or once meta.count is reached, whatever
    links.next says. If the count moved while paging, or the distinct runs seen fall short
    of it (runs shifted between offsets), the window is paged again and only runs not yet
    seen are passed on.

    With `lookahead` (the default when the client is not paced), the page after next is
    requested while the next one is awaited, guessing it starts where a page as full as the
    last one would end. A wrong guess (a short page) is dropped and the right request made,
    so results and paging are exactly the sequential ones; the server and the sync then work
    at the same time instead of in turn. A paced client gains nothing from it and never
    spends a request on a guess.
    """
    ahead = Lookahead(client) if (not client.paced if lookahead is None else lookahead) else None
    seen: set[str] = set()
    count: int | None = None
    try:
        for attempt in range(1, MAX_PASSES + 1):
            offset = 0
            counts: set[int] = set()
            while True:
                params = {**filters, "limit": str(page_limit), "offset": str(offset)}
                page = ahead.get(params, offset) if ahead else client.get_runs(params)
                if page.count is not None:
                    count = page.count
                    counts.add(count)
                if not page.data:
                    break
                served = len(page.data)
                if cap is not None and offset == 0 and count is not None \
                        and -(-count // max(served, 1)) > cap.pages:
                    cap.cut = True
                if ahead and not (cap and cap.cut) and _more(page, count, offset + served):
                    # The next page for sure, and the one after it if pages stay this full.
                    for guess in (offset + served, offset + 2 * served):
                        if _more(page, count, guess):
                            ahead.guess({**params, "offset": str(guess)}, guess)
                fresh = [run for run in page.data if run.id not in seen]
                seen.update(run.id for run in fresh)
                if fresh:
                    yield fresh, describe(params)
                offset += served
                if cap is not None and cap.cut or not _more(page, count, offset):
                    break
            if ahead:
                ahead.drop()
            # A count that moved while paging means runs shifted between offsets: page again.
            if cap is not None and cap.cut or count is None or (len(seen) >= count and len(counts) <= 1):
                return
            if attempt < MAX_PASSES:
                log.warning("%s: the API's count moved (%s) or fell short of the %d runs seen; "
                            "paging the window again", describe(filters),
                            sorted(counts), len(seen))
        log.warning("%s: %d runs seen, the API counts %d after %d passes; runs may have been "
                    "purged or added meanwhile", describe(filters), len(seen), count, MAX_PASSES)
    finally:
        if ahead:
            ahead.close()


def _more(page, count: int | None, offset: int) -> bool:
    """Whether paging goes on to `offset`: below the count, or following next links."""
    return offset < count if count is not None else page.next_url is not None


class Lookahead:
    """Requests in flight for offsets the paging loop is expected to ask for next."""

    def __init__(self, client: ZapierClient) -> None:
        self.client = client
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zap-runs-page")
        self.flying: dict[int, Future] = {}

    def guess(self, params: dict[str, str], offset: int) -> None:
        if offset not in self.flying and len(self.flying) < 2:
            self.flying[offset] = self.pool.submit(self.client.get_runs, params)

    def get(self, params: dict[str, str], offset: int):
        """The page at `offset`: from the request in flight for it, else fetched now (the
        guesses in flight then rest on a wrong one and are dropped, their errors with them)."""
        future = self.flying.pop(offset, None)
        if future is None:
            self.drop()
            return self.client.get_runs(params)
        return future.result()

    def drop(self) -> None:
        for future in self.flying.values():
            future.cancel() or future.exception()  # wait, so no stray request is left behind
        self.flying.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
