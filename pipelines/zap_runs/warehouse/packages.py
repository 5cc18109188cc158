"""The load packages dlt keeps after loading them, pruned: the pipeline folder stays bounded.

dlt keeps every loaded package in the pipeline's working folder for good (its files, its schema
and a copy of the pipeline state); `[load] delete_completed_jobs` removes the files only, so a
sync every 15 minutes still grows the folder by every package's rest. Nothing of zap-runs reads a
loaded package again (a crashed load is a pending package, never a loaded one), so after each
load all but the newest are removed, and the newest one with failed jobs stays for inspection.

A package is first renamed into a trash folder (one atomic step), then deleted: a prune cut off
half-way leaves no half package among the loaded ones (dlt's listing would fail on it), and the
trash is emptied by the next prune. A package that cannot be removed costs a log line, never the
sync.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import dlt

log = logging.getLogger(__name__)

# Loaded packages kept: the newest, for `dlt pipeline zap_runs info` and a look at what loaded.
KEEP = 1
TRASH = ".pruned_packages"


def prune_loaded_packages(pipeline: dlt.Pipeline, keep: int = KEEP, everything: bool = False) -> int:
    """Remove the loaded packages but the newest `keep` and the newest with failed jobs (all of
    them when `everything`: forget); how many were removed."""
    trash = Path(pipeline.working_dir) / TRASH
    load_ids = sorted(pipeline.list_completed_load_packages(), reverse=True)
    paths = {load_id: _package_path(pipeline, load_id) for load_id in load_ids}
    # Where dlt keeps its loaded packages, as its public package info says: a package it cannot
    # read (a prune of an older version cut off half-way) is found beside the others.
    folder = next((path.parent for path in paths.values() if path is not None), None)
    kept_failed = everything
    removed = 0
    for position, load_id in enumerate(load_ids):
        path = paths[load_id] or (folder / load_id if folder is not None else None)
        if not everything and position < keep:
            continue
        if not kept_failed and _has_failed_jobs(pipeline, load_id):
            kept_failed = True  # the newest package with failed jobs stays, to be looked at
            continue
        if path is not None and path.is_dir() and _discard(path, trash):
            removed += 1
    shutil.rmtree(trash, ignore_errors=True)
    return removed


def _package_path(pipeline: dlt.Pipeline, load_id: str) -> Path | None:
    try:
        return Path(pipeline.get_load_package_info(load_id).package_path)
    except Exception:  # noqa: BLE001 - a package whose files are gone in part: dlt cannot read it
        return None


def _has_failed_jobs(pipeline: dlt.Pipeline, load_id: str) -> bool:
    try:
        return bool(pipeline.list_failed_jobs_in_package(load_id))
    except Exception:  # noqa: BLE001 - a package dlt cannot read: nothing in it to look at
        return False


def _discard(path: Path, trash: Path) -> bool:
    try:
        trash.mkdir(exist_ok=True)
        os.replace(path, trash / path.name)
        return True
    except OSError as exc:
        log.warning("could not remove the loaded package %s (%s); the next sync tries again",
                    path, exc.strerror)
        return False
