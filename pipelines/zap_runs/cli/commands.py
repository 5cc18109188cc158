"""The commands behind the CLI: sync (and --demo), models, report, status; each returns its exit code."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.pipeline.exceptions import PipelineStepFailed

from ..accounts.entries import configured, parse_shard
from ..accounts.failed_accounts import failure_of
from ..accounts.outcomes import split
from ..alerts.channels import Channel
from ..common import settings
from ..common.errors import (
    ConfigError,
    ZapRunsError,
    first_line,
    missing_config,
    unwrap,
)
from ..common.settings import SQL_DIALECTS
from ..common.sync_config import SyncConfig, sync_config
from ..output.health import read_status
from ..output.progress import display_for
from ..output.report import print_report
from ..output.status import format_status
from ..output.statusjson import status_json
from ..output.summary import format_summary
from ..warehouse.locks import SyncAlreadyRunning, SyncLock
from ..warehouse.models import build_models
from ..warehouse.pipeline import logged_sync, make_pipeline
from .alert_hooks import after_models, configured_channels, loop_callbacks, test_channels

log = logging.getLogger(__name__)

DEMO_DB = "zap_runs_demo.duckdb"


def dataset_name(args: argparse.Namespace, config: SyncConfig) -> str:
    """--dataset, else [sources.zap_runs] dataset_name (default 'zapier')."""
    return args.dataset or config.dataset_name


def source_overrides(args: argparse.Namespace) -> dict:
    """Source arguments given on the command line; the rest resolve from dlt config."""
    out: dict = {}
    if args.since:
        out.update(since=args.since, force_since=True)
    if args.lookback is not None:
        if args.lookback < 0:
            raise ConfigError("--lookback must be zero or more hours.")
        out["lookback_hours"] = args.lookback
    if args.full_refresh:
        out["full_refresh"] = True
    if getattr(args, "shard", None):
        out["shard"] = args.shard
    if getattr(args, "accounts_file", None):
        out["accounts_file"] = accounts_file(args)
    if getattr(args, "all_accounts", False):
        out["all_accounts"] = True
    return out


def accounts_file(args: argparse.Namespace) -> str | None:
    """--accounts-file, checked to be a file (as given: messages name it the user's way); else None."""
    if not args.accounts_file:
        return None
    path = Path(args.accounts_file).expanduser()
    if not path.is_file():
        raise ConfigError(f"--accounts-file {args.accounts_file}: no such file; give the path of "
                          "a JSON Lines file of accounts (docs/partners.md).")
    return str(path)


def shard_pipeline(args: argparse.Namespace, config: SyncConfig) -> dlt.Pipeline:
    """The pipeline of sync and forget: with --shard, the shard's own (state, lock, load
    packages, staging dataset): zap_runs_shard_<i>_of_<n>."""
    name = settings.PIPELINE_NAME
    if args.shard:
        index, count = parse_shard(args.shard)
        name = f"{settings.PIPELINE_NAME}_shard_{index}_of_{count}"
    return make_pipeline(args.destination, dataset_name(args, config), pipeline_name=name,
                         config=config, own_staging=bool(args.shard))


def sync_command(args: argparse.Namespace) -> int:
    """The default command: one sync into the configured destination, then the SQL models."""
    overrides = source_overrides(args)  # an argument error before any destination is touched
    config = sync_config()
    try:
        pipeline = shard_pipeline(args, config)
    except UnknownDestinationModule:
        raise ConfigError(f"unknown destination {args.destination!r}: use a dlt destination name "
                          "such as duckdb, postgres, bigquery, motherduck, snowflake or filesystem."
                          ) from None
    try:
        result = sync_and_models(pipeline, config, models=not args.shard,
                                 verbose=args.verbose, **overrides)
    except ConfigFieldMissingException as exc:
        raise missing_config(exc, args.destination) from None
    except PipelineStepFailed as exc:
        raise unwrap(exc, args.destination) from None
    real, failed, bad = split(result.accounts)
    if bad and not real:
        raise ConfigError(f"no account entry could be read ({len(bad)} bad): {bad[0].error}")
    if failed and len(failed) == len(real):
        raise ZapRunsError(f"every account failed ({len(failed)}): {failed[0].account}: "
                           f"{failed[0].error}; see the summary above.")
    error = failure_of(result.accounts, "See the summary above and `python -m pipelines.zap_runs "
                                        "status`.")
    if error is not None:
        raise error
    return 0


def loop_command(args: argparse.Namespace) -> int:
    """`--loop`: rounds of reading the due accounts and loading, until SIGTERM (loop.py)."""
    from .loop import run_loop

    config = sync_config()
    if args.since or args.full_refresh or args.all_accounts:
        raise ConfigError("--loop reads the due accounts round after round; --since, "
                          "--full-refresh and --all-accounts are for one sync: run it first, "
                          "then the loop.")
    load_every = args.load_every if args.load_every is not None else config.load_every_seconds
    if not load_every > 0 or not config.models_every_minutes > 0:
        raise ConfigError("--load-every (load_every_seconds) and models_every_minutes must be "
                          "positive.")
    staleness = dlt.config.get("sources.zap_runs.max_staleness_hours", float)
    staleness = settings.DEFAULT_MAX_STALENESS_HOURS if staleness is None else staleness
    if load_every > staleness * 3600:
        raise ConfigError(f"--load-every ({load_every:g} s) is longer than max_staleness_hours "
                          f"({staleness:g} h): no account could be read that often; load more "
                          "often.")
    overrides = source_overrides(args)
    pipeline = shard_pipeline(args, config)
    # After the models, and after each other round that loaded: the alerts (alert_hooks.py).
    after_build, after_load = loop_callbacks(pipeline, accounts_file(args))
    build = None if args.shard else (lambda: after_build(rebuild_models(pipeline)))
    alerts = None if args.shard else after_load
    try:
        with SyncLock(Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.loop.lock", 0):
            totals = run_loop(pipeline, config, load_every=load_every,
                              models_every=config.models_every_minutes * 60, build_models=build,
                              after_load=alerts, **overrides)
    except ConfigFieldMissingException as exc:
        raise missing_config(exc, args.destination) from None
    except SyncAlreadyRunning as exc:
        raise SyncAlreadyRunning(f"another --loop of this pipeline is running ("
                                 f"{str(exc).split('(', 1)[1].split(')', 1)[0]}): one loop per "
                                 "pipeline (use --shard to split the accounts).") from None
    except KeyboardInterrupt:
        print("error: stopped at once by a second signal: the rounds before are loaded; the next "
              "sync finishes the round under way.", file=sys.stderr)
        return 1
    print(f"zap-runs loop stopped after {totals.rounds:,} rounds: {totals.loads:,} loads, "
          f"{totals.accounts:,} account reads, {totals.runs:,} runs, {totals.requests:,} "
          f"requests, {totals.failed_rounds:,} failed rounds, models rebuilt {totals.models:,} "
          "times")
    return 0


def sync_and_models(pipeline: dlt.Pipeline, config: SyncConfig, models: bool = True,
                    verbose: bool = False, **source_args: object):
    """One sync, then the SQL models, under a progress display on stderr (output/progress.py);
    the summary (with the requests by purpose if `verbose`) is printed once the display is
    gone, and a failure of the models after it."""
    given = source_args.pop("alert_channels", None)
    with display_for(sys.stderr) as display:
        result = logged_sync(pipeline, config, progress=display.progress, on_stage=display.stage,
                             **source_args)
        display.stage("models")
        built, failure = "  models     not rebuilt: a shard leaves them to `models` after all " \
                                "shards", None
        if models:
            try:
                built = rebuild_models(pipeline)
            except ZapRunsError as exc:
                built, failure = "", exc
    print(format_summary(result, *paced_at(source_args), verbose=verbose))
    if failure is not None:
        raise failure
    print(built)
    if models:
        lines, problem = after_models(pipeline, given, source_args.get("accounts_file"),
                                      source_args.get("accounts"))
        for line in lines:
            print(line)
        if problem is not None:
            raise problem
    return result


def alerts_command(args: argparse.Namespace) -> int:
    """`alerts test`: a sample alert to each configured channel, a line per channel; exit 1 when
    one failed."""
    if args.action != "test":
        raise ConfigError("alerts takes one action: `alerts test` (send a sample to each channel).")
    channels = configured_channels(accounts_file(args))
    if not channels:
        raise ConfigError("no alert channel is configured: add a [sources.zap_runs.alerts.<name>] "
                          "table with a kind to .dlt/secrets.toml, or `alerts` to an account "
                          "entry (docs/alerts.md).")
    lines, failed = test_channels(channels)
    print("\n".join(lines))
    return 1 if failed else 0


def paced_at(source_args: dict) -> tuple[float, int]:
    """(the requests a minute a sync is paced at, 0 for none: requests_per_minute given, else
    from [sources.zap_runs], else the default, with a shard's 1/n share of it; n)."""
    rate = source_args.get("requests_per_minute")
    if rate is None:
        try:
            rate = dlt.config.get("sources.zap_runs.requests_per_minute", float)
        except Exception:  # noqa: BLE001 - the source refused it already; the summary says less
            rate = None
    rate = settings.DEFAULT_REQUESTS_PER_MINUTE if rate is None else float(rate)
    share = parse_shard(str(source_args["shard"]))[1] if source_args.get("shard") else 1
    return rate / share, share


def rebuild_models(pipeline: dlt.Pipeline) -> str:
    """Rebuild the SQL models after a sync; one summary line."""
    if pipeline.destination.destination_name not in SQL_DIALECTS:
        return f"  models     skipped: {pipeline.destination.destination_name} is not a SQL destination"
    try:
        timings = build_models(pipeline)
    except ZapRunsError:
        raise
    except Exception as exc:  # noqa: BLE001 - the data is loaded; say what failed, in one line
        raise ZapRunsError(f"the sync loaded its data, but rebuilding the SQL models failed: "
                           f"{first_line(exc)}. Fix it and run "
                           "`python -m pipelines.zap_runs models`.") from None
    return f"  models     {len(timings)} rebuilt in {sum(timings.values()):.2f} s"


def models_command(args: argparse.Namespace) -> int:
    """`models`: rebuild the SQL models on the configured destination."""
    config = sync_config()
    pipeline = make_pipeline(args.destination, dataset_name(args, config), config=config)
    timings = build_models(pipeline)
    print(f"built {len(timings)} models in {pipeline.destination.destination_name} dataset "
          f"{pipeline.dataset_name!r} in {sum(timings.values()):.2f} s: {', '.join(timings)}")
    lines, problem = after_models(pipeline, accounts_file=accounts_file(args))
    for line in lines:
        print(line)
    if problem is not None:
        raise problem
    return 0


def report_command(args: argparse.Namespace) -> int:
    """`report`: the dashboard from the marts of the configured destination: one account's with
    --account NAME, else every account's (with the accounts that need attention)."""
    from ..output.dashboard import write_report  # only for the commands that draw

    config = sync_config()
    pipeline = make_pipeline(args.destination, dataset_name(args, config), config=config)
    if pipeline.destination.destination_name not in SQL_DIALECTS:
        raise ConfigError(f"the report reads SQL models; {args.destination!r} is not a SQL destination.")
    names = set(configured(accounts_file(args)))  # with --accounts-file: those accounts only
    try:
        path = write_report(pipeline, args.output, account=args.account, configured=names)
    except ZapRunsError:
        raise  # an unknown --account says so itself
    except OSError as exc:
        raise ConfigError(f"cannot write {args.output}: {exc.strerror}; pick another --output.") from None
    except Exception as exc:  # noqa: BLE001 - most likely the models were never built
        raise ZapRunsError(f"cannot read the SQL models ({first_line(exc, 200)}); run a sync first, or "
                           "`python -m pipelines.zap_runs models`.") from None
    print(f"report written to {path}")
    return 0


def status_command(args: argparse.Namespace) -> int:
    """`status`: the last pass, the last success, the newest run and the accounts that need
    attention (--account NAME: one account's; --json: one JSON object); exit 1 when the last
    success is older than --max-age, 4 when accounts need attention."""
    config = sync_config()
    max_age = args.max_age if args.max_age is not None else config.stale_after_hours
    pipeline = make_pipeline(args.destination, dataset_name(args, config), config=config)
    if pipeline.destination.destination_name not in SQL_DIALECTS:
        raise ConfigError(f"status reads the sync log, a SQL table; {args.destination!r} is not a "
                          "SQL destination.")
    # With many accounts configured, one that is not among them is no longer synced.
    status = read_status(pipeline, max_age, args.account,
                         configured=set(configured(accounts_file(args))))
    if args.json:
        print(status_json(status, pipeline.destination.destination_name, pipeline.dataset_name))
    else:
        print(format_status(status, verbose=args.verbose))
    return status.exit_code


def demo_command(args: argparse.Namespace) -> int:
    """`--demo`: a simulated account (35 days, 25 zaps) on 127.0.0.1 synced into
    ./zap_runs_demo.duckdb, then a short report and the dashboard."""
    from pipelines.simulator import Episode, Simulator, World, WorldConfig

    from ..output.dashboard import write_report

    if args.destination != "duckdb":
        log.warning("--demo always writes DuckDB (%s); --destination is ignored", DEMO_DB)
    # The demo starts afresh each time: its own DuckDB file and pipeline folder, in this directory.
    work = Path(".zap_runs_demo")
    shutil.rmtree(work, ignore_errors=True)
    Path(DEMO_DB).unlink(missing_ok=True)
    # Its busiest zap has been failing for eight hours (an app disconnected): an open incident.
    world = World(WorldConfig(seed=7, episodes=(
        Episode(None, datetime.now(UTC) - timedelta(hours=8), 24),)))
    with Simulator(world, rate_limit=None) as sim:
        log.info("simulator serving %d runs of %d zaps at %s", len(world.runs), len(world.zaps),
                 sim.base_url)
        config = sync_config()
        pipeline = make_pipeline("duckdb", args.dataset or settings.DEFAULT_DATASET,
                                 pipeline_name="zap_runs_demo", credentials=DEMO_DB,
                                 pipelines_dir=str(work), config=config)
        # The demo account keeps 35 days: read them all, beyond the API's default 30.
        since = args.since or (world.clock.now() - timedelta(days=35)).strftime("%Y-%m-%d")
        sync_and_models(pipeline, config, verbose=args.verbose, base_url=sim.base_url,
                        access_token=sim.token, requests_per_minute=0, since=since,
                        force_since=True, alert_channels=[Channel("demo", "terminal", {})])
    print()
    print_report(pipeline)
    report = write_report(pipeline, args.output)
    print(f"\nDuckDB file: {Path(DEMO_DB).resolve()}")
    print(f"Dashboard:   {report}")
    return 0


def forget_command(args: argparse.Namespace) -> int:
    """`forget --account NAME`: delete one account's rows from every table, its state, its
    stored token and dlt's local copies, then rebuild the models."""
    from ..warehouse.forget import forget_account

    if not args.account:
        raise ConfigError("forget needs --account NAME (the account whose data to delete).")
    config = sync_config()
    pipeline = shard_pipeline(args, config)
    # Read before anything is deleted: a bad --accounts-file stops here, not half-way.
    where = configured(accounts_file(args)).get(args.account)
    from ..api.oauth import DEFAULT_STORE

    store = dlt.config.get("sources.zap_runs.token_store_path") or DEFAULT_STORE
    with SyncLock(Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.lock",
                  config.overlap_wait_seconds):
        done = forget_account(pipeline, args.account, store)
    rows = ", ".join(f"{n:,} from {table}" for table, n in done.rows.items())
    print(f"forgot account {args.account!r}: deleted {rows}; state "
          f"{'removed' if done.state else 'had none'}; {done.state_versions} older state "
          f"versions, {done.packages} local load packages"
          f"{' and its token store' if done.token_store else ''} deleted")
    if pipeline.destination.destination_name in SQL_DIALECTS:
        print(rebuild_models(pipeline))
    if where:
        print(f"{args.account!r} is still configured ({where}): remove it, or the next sync reads "
              "it again.")
    return 0
