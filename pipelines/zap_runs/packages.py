"""The load packages dlt keeps after loading them, pruned: the pipeline folder stays bounded.

dlt keeps every loaded package in the pipeline's working folder for good (its files, its schema
and a copy of the pipeline state); `[load] delete_completed_jobs` removes the files only, so a
sync every 15 minutes still grows the folder by every package's rest. Nothing of zap-runs reads a
loaded package again (a crashed load is a pending package, never a loaded one), so after each
load all but the newest are removed; a package with failed jobs stays, for inspection, as dlt's
own setting keeps it. Packages are found through dlt's public listing and package info.
"""

from __future__ import annotations

import logging
import shutil

import dlt

log = logging.getLogger(__name__)

# Loaded packages kept: the last one, for `dlt pipeline zap_runs info` and a look at what loaded.
KEEP = 1


def prune_loaded_packages(pipeline: dlt.Pipeline, keep: int = KEEP) -> int:
    """Remove all loaded packages but the newest `keep` (and those with failed jobs); how many."""
    load_ids = sorted(pipeline.list_completed_load_packages())
    removed = 0
    for load_id in load_ids[:max(0, len(load_ids) - keep)]:
        info = pipeline.get_load_package_info(load_id)
        if info.jobs.get("failed_jobs"):
            continue
        shutil.rmtree(info.package_path, ignore_errors=True)
        removed += 1
    if removed:
        log.debug("removed %d loaded packages from %s", removed, pipeline.working_dir)
    return removed
