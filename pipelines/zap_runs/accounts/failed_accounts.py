"""A pass in which accounts failed fails a plain dlt `pipeline.run` once the others are loaded.

dlt gap: a source cannot fail a run after its data is loaded. Raising in the resource fails the
extract step, and dlt then discards the whole package (every other account's runs and state);
logging alone lets an orchestrator's task go green while a user's data stops. So the resource,
at the end of a pass with failed accounts, wraps `load` of the running pipeline until it has
loaded this package: dlt's `run` ends with `self.load(...)`, and the wrapper raises
SomeAccountsFailed after it returned. tests/test_embedding.py pins that dlt behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dlt

from ..common.errors import SomeAccountsFailed
from .outcomes import AccountOutcome, split

log = logging.getLogger(__name__)


def failure_of(accounts: list[AccountOutcome], after: str = "") -> SomeAccountsFailed | None:
    """The error a pass's outcomes call for (its message ending in `after`, else the first
    failure), or None when every account synced (or waits). Bad entries of the configuration
    are counted apart: they are no accounts."""
    real, failed, bad = split(accounts)
    if not failed and not bad:
        return None
    parts = []
    if failed:
        names = ", ".join(a.account for a in failed[:5]) + (" ..." if len(failed) > 5 else "")
        parts.append(f"{len(failed)} of {len(real)} accounts failed or were skipped ({names})")
    if bad:
        parts.append(f"{len(bad)} bad {'entry' if len(bad) == 1 else 'entries'} in the accounts "
                     f"configuration ({bad[0].error}{' ...' if len(bad) > 1 else ''})")
    loaded = "no account was loaded" if len(failed) == len(real) else "the others are loaded"
    first = f"First: {failed[0].account}: {failed[0].error}" if failed else ""
    return SomeAccountsFailed(f"{'; '.join(parts)}; {loaded}. {after or first}".rstrip(),
                              failed=failed + bad, accounts=list(accounts))


def raise_after_load(accounts: list[AccountOutcome]) -> None:
    """Make the running pipeline's load of this package raise SomeAccountsFailed once it is
    done (called from the resource at the end of a pass); outside a pipeline (the source
    iterated by hand) there is no load to wait for, and it raises at once."""
    error = failure_of(accounts)
    if error is None:
        return
    try:
        load_id = dlt.current.load_package_state()["load_id"]
    except Exception:  # noqa: BLE001 - no load package: not extracted by a pipeline
        raise error from None
    pipeline = dlt.current.pipeline()
    installed = pipeline.__dict__.get("load")
    if installed is not None and getattr(installed, "pending", None) is not None:
        installed.pending.setdefault(load_id, []).append(error)  # a second source in the run
        return
    original: Callable = pipeline.load

    def load(*args, **kwargs):
        # A load that fails leaves this in place for the retry of the package; a load that
        # loads it raises, and dlt's own method is back.
        info = original(*args, **kwargs)
        errors = [e for loaded in getattr(info, "loads_ids", ()) for e in load.pending.pop(loaded, [])]
        if not load.pending:
            pipeline.__dict__.pop("load", None)
        if not errors:
            return info
        first = errors[0]
        for other in errors[1:]:
            first.failed += other.failed
            first.accounts += other.accounts
        first.load_info = info
        raise first

    load.pending = {load_id: [error]}
    pipeline.load = load
