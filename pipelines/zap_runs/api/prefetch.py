"""Fetch the next pages while the current one is turned into rows.

Paging is sequential (each offset depends on what the last page held), so the whole paging
loop runs in one background thread and hands pages over through a small queue. The server's
time and the network's then overlap with the sync's own work instead of adding to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(pages: Iterator[T], depth: int = 8) -> Iterator[T]:
    """`pages`, produced up to `depth` items ahead in a thread; its errors are raised here.

    When the consumer stops early, the thread ends after the request it is in (it is a daemon
    thread, so it never holds up the process's exit).
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in pages:
                if not offer((item, None)):
                    break
            else:
                offer((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            offer((_DONE, exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="zap-runs-fetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
