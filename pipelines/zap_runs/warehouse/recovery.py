"""What an interrupted sync left behind is aborted, the dlt way, and its runs are read again.

A sync killed or failed during its load leaves a load package behind: some of its jobs may have
committed (a staging copy, even the merge), and dlt may not know which. Resuming it could run a
committed copy job again, and dlt's merge would then insert those root rows twice
(docs/dlt-gaps.md). Instead the package is aborted with dlt's `Pipeline.abort_packages` (public
since dlt 1.30): no job of it runs again, and dlt puts the pipeline's state back where the
package began. The accounts' states it carried never count (accounts/state.py reads the rows of
completed loads only), so the next extract reads those runs again from the API and the merge
replaces whatever the half-finished load committed, each run once. The cost is the requests of
the aborted window, each time a load is aborted (a load that fails every time is read again
every time: its error says why). The aborted package joins the loaded ones, pruned at once.
"""

from __future__ import annotations

import logging

import dlt

from .packages import prune_loaded_packages

log = logging.getLogger(__name__)


def abort_pending(pipeline: dlt.Pipeline) -> bool:
    """Abort the load packages an interrupted sync left behind, before extracting anew; whether
    there were any."""
    if not pipeline.has_pending_data:
        return False
    log.warning("an earlier sync left a load package behind, not fully loaded: aborted (dlt "
                "restores the state it started from); this sync reads its runs again")
    pipeline.abort_packages()
    prune_loaded_packages(pipeline)  # dlt keeps the aborted package with the loaded ones
    return True
