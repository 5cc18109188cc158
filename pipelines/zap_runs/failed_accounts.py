"""A pass in which accounts failed fails a plain dlt `pipeline.run` once the others are loaded.

dlt gap: a source cannot fail a run after its data is loaded. Raising in the resource fails the
extract step, and dlt then discards the whole package (every other account's runs and state);
logging alone lets an orchestrator's task go green while a user's data stops. So the resource,
at the end of a pass with failed accounts, wraps `load` of the running pipeline (one call, this
package only): dlt's `run` ends with `self.load(...)`, and the wrapper raises SomeAccountsFailed
after it returned. tests/test_embedding.py pins that dlt behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dlt

from .errors import SomeAccountsFailed
from .outcomes import NOT_LOADED, AccountOutcome

log = logging.getLogger(__name__)


def failure_of(accounts: list[AccountOutcome], after: str = "") -> SomeAccountsFailed | None:
    """The error a pass's outcomes call for (its message ending in `after`, else the first
    failure), or None when every account synced (or waits)."""
    failed = [a for a in accounts if a.result in NOT_LOADED]
    if not failed:
        return None
    names = ", ".join(a.account for a in failed[:5]) + (" ..." if len(failed) > 5 else "")
    loaded = "none of the accounts was loaded" if len(failed) == len(accounts) else \
        "the others are loaded"
    return SomeAccountsFailed(f"{len(failed)} of {len(accounts)} accounts failed, were skipped or "
                              f"are bad entries ({names}); {loaded}. "
                              + (after or f"First: {failed[0].account}: {failed[0].error}"),
                              failed=failed, accounts=list(accounts))


def raise_after_load(accounts: list[AccountOutcome]) -> None:
    """Make the running pipeline's next `load` of this package raise SomeAccountsFailed after it
    completed (called from the resource, during extract)."""
    error = failure_of(accounts)
    if error is None:
        return
    pipeline = dlt.current.pipeline()
    load_id = dlt.current.load_package_state()["load_id"]
    original: Callable = pipeline.load

    def load(*args, **kwargs):
        pipeline.__dict__.pop("load", None)  # one call: dlt's own method again
        info = original(*args, **kwargs)
        if load_id in getattr(info, "loads_ids", ()):
            error.load_info = info
            raise error
        log.warning("a pass whose accounts failed was not loaded by this load: %s", error)
        return info

    pipeline.load = load
