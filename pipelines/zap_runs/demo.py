"""`--demo`: the simulator on 127.0.0.1 feeding a local DuckDB file, then a short report."""

from __future__ import annotations

import argparse
import logging
import shutil
from datetime import timedelta
from pathlib import Path

from pipelines.simulator import Simulator, World, WorldConfig

from . import settings
from .cli import sync_and_models
from .dashboard import write_report
from .pipeline import make_pipeline
from .report import print_report

log = logging.getLogger(__name__)

DEMO_DB = "zap_runs_demo.duckdb"


def run_demo(args: argparse.Namespace) -> int:
    """Sync a simulated account (35 days, 25 zaps) into ./zap_runs_demo.duckdb and report."""
    if args.destination != "duckdb":
        log.warning("--demo always writes DuckDB (%s); --destination is ignored", DEMO_DB)
    # The demo starts afresh each time: its own DuckDB file and pipeline folder, in this directory.
    work = Path(".zap_runs_demo")
    shutil.rmtree(work, ignore_errors=True)
    Path(DEMO_DB).unlink(missing_ok=True)
    world = World(WorldConfig(seed=7))
    with Simulator(world, rate_limit=None) as sim:
        log.info("simulator serving %d runs of %d zaps at %s", len(world.runs), len(world.zaps),
                 sim.base_url)
        pipeline = make_pipeline("duckdb", args.dataset or settings.DEFAULT_DATASET,
                                 pipeline_name="zap_runs_demo", credentials=DEMO_DB,
                                 pipelines_dir=str(work))
        # The demo account keeps 35 days: read them all, beyond the API's default 30.
        since = args.since or (world.clock.now() - timedelta(days=35)).strftime("%Y-%m-%d")
        sync_and_models(pipeline, base_url=sim.base_url, access_token=sim.token,
                        requests_per_minute=0, since=since, force_since=True)
    print()
    print_report(pipeline)
    report = write_report(pipeline, args.output)
    print(f"\nDuckDB file: {Path(DEMO_DB).resolve()}")
    print(f"Dashboard:   {report}")
    return 0
