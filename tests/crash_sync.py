"""A real sync process that SIGKILLs itself at a chosen point (used by test_crash_safety).

Usage: python -m tests.crash_sync STAGE [cli args]; STAGE is extract, normalize, load,
committed or complete. Everything else is the real command line.
"""

from __future__ import annotations

import os
import signal
import sys

from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
from dlt.destinations.impl.postgres.postgres import PostgresCsvCopyJob
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.load.load import Load
from dlt.pipeline.pipeline import Pipeline

from pipelines.zap_runs import client as http
from pipelines.zap_runs.cli import main


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def after(count):
    """Kill on the call after `count` calls of the patched method."""
    calls = {"n": 0}

    def wrap(original):
        def patched(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > count:
                die()
            return original(*args, **kwargs)
        return patched
    return wrap



def committed_then_die(run):
    def patched(job):
        run(job)
        if job.load_table_name == "zap_runs":
            die()
    return patched


stage = sys.argv[1]
if stage == "extract":  # mid-extract, after three pages
    http.ZapierClient.get_runs = after(3)(http.ZapierClient.get_runs)
elif stage == "normalize":  # the package is extracted, normalization starts
    Pipeline.normalize = after(0)(Pipeline.normalize)
elif stage == "load":  # some load jobs have run, the rest have not
    Load.complete_jobs = after(1)(Load.complete_jobs)
elif stage == "committed":  # zap_runs' copy job committed its rows; dlt has not recorded it
    for job_class in (DuckDbCopyJob, PostgresCsvCopyJob):
        job_class.run = committed_then_die(job_class.run)
elif stage == "complete":  # every job ran; the load is not yet marked complete
    SqlJobClientBase.complete_load = after(0)(SqlJobClientBase.complete_load)
else:
    sys.exit(f"unknown stage {stage}")
sys.exit(main(sys.argv[2:]))
