"""Command line: `python -m pipelines.zap_runs [sync|models] [options]`, exit codes 0/1/2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.pipeline.exceptions import PipelineStepFailed

from . import logs, settings
from .errors import ConfigError, ZapRunsError, first_line, missing_config, unwrap
from .summary import format_summary

log = logging.getLogger("pipelines.zap_runs")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2  # and 3: another sync still held the lock


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.zap_runs",
        description="Sync Zapier zap runs (Partner API GET /v2/zap-runs) into DuckDB or any dlt "
                    "destination, incrementally. Configuration: .dlt/config.toml and "
                    ".dlt/secrets.toml under [sources.zap_runs], or SOURCES__ZAP_RUNS__* env vars.",
        epilog="Exit codes: 0 synced, 1 the sync failed (status: the data is stale), 2 bad "
               "configuration or arguments, 3 another sync of the pipeline was still running.")
    parser.add_argument("command", nargs="?", default="sync", choices=["sync", "models", "report", "status"],
                        help="sync (default): load new and changed runs; models: rebuild the SQL "
                             "models; report: write the HTML dashboard from the models; status: "
                             "when the last sync ran and succeeded (exit 1 when stale)")
    parser.add_argument("--max-age", type=float, default=None, metavar="HOURS",
                        help="status: exit 1 when the last successful sync is older than this "
                             "(default: stale_after_hours, 6)")
    parser.add_argument("--output", default="zap_runs_report.html",
                        help="where `report` and --demo write the dashboard (default %(default)s)")
    parser.add_argument("--demo", action="store_true",
                        help="start the local Partner API simulator, sync it into zap_runs_demo.duckdb "
                             "and print a report (no Zapier account needed)")
    parser.add_argument("--destination", default="duckdb",
                        help="any dlt destination: duckdb (default, ./zap_runs.duckdb), postgres, "
                             "bigquery, motherduck, snowflake, filesystem ... configured the dlt way")
    parser.add_argument("--dataset", default=None,
                        help=f"dataset (schema) name (default {settings.DEFAULT_DATASET!r})")
    parser.add_argument("--since", default=None,
                        help="read runs from this date (YYYY-MM-DD or ISO date-time) in this sync: "
                             "a backfill beyond the API's default 30 days")
    parser.add_argument("--full-refresh", action="store_true",
                        help="ignore the stored cursor and open-run list and re-read the whole "
                             "window (from --since, else the API's 30 days); merged, nothing dropped")
    parser.add_argument("--lookback", type=float, default=None, metavar="HOURS",
                        help=f"re-read runs this many hours before the cursor "
                             f"(default {settings.DEFAULT_LOOKBACK_HOURS:g})")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    try:
        if args.demo:
            from .demo import run_demo

            return run_demo(args)
        if args.command == "models":
            from .models import build_models_command

            return build_models_command(args)
        if args.command == "report":
            return report_command(args)
        if args.command == "status":
            from .status import status_command

            return status_command(args)
        return run_sync_command(args)
    except ZapRunsError as exc:
        return fail(exc)
    except PipelineStepFailed as exc:
        return fail(unwrap(exc, args.destination))
    except KeyboardInterrupt:
        print("error: interrupted; nothing of this sync was committed", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - a bug: one line for people, the trace in the log
        log.debug("unexpected failure", exc_info=True)
        print(f"error: unexpected {type(exc).__name__}: {first_line(exc)}. Run again with --log-level DEBUG "
              "for the traceback and report it.", file=sys.stderr)
        return EXIT_FAILED


def fail(exc: ZapRunsError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code


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
    return out


def dataset_name(args: argparse.Namespace) -> str:
    """--dataset, else [sources.zap_runs] dataset_name, else 'zapier'."""
    import dlt

    return args.dataset or dlt.config.get("sources.zap_runs.dataset_name") or settings.DEFAULT_DATASET


def run_sync_command(args: argparse.Namespace) -> int:
    from .pipeline import make_pipeline

    try:
        pipeline = make_pipeline(args.destination, dataset_name(args))
    except UnknownDestinationModule:
        raise ConfigError(f"unknown destination {args.destination!r}: use a dlt destination name "
                          "such as duckdb, postgres, bigquery, motherduck, snowflake or filesystem."
                          ) from None
    try:
        sync_and_models(pipeline, **source_overrides(args))
    except ConfigFieldMissingException as exc:
        raise missing_config(exc, args.destination) from None
    except PipelineStepFailed as exc:
        raise unwrap(exc, args.destination) from None
    return EXIT_OK


def sync_and_models(pipeline, **source_args: object) -> None:
    """One sync, then the SQL models, under a progress display on stderr (progress.py); the
    summary is printed once the display is gone, and a failure of the models after it."""
    from .pipeline import logged_sync
    from .progress import display_for

    with display_for(sys.stderr) as display:
        result = logged_sync(pipeline, progress=display.progress, on_stage=display.stage,
                             **source_args)
        display.stage("models")
        try:
            models, failure = rebuild_models(pipeline), None
        except ZapRunsError as exc:
            models, failure = "", exc
    print(format_summary(result))
    if failure is not None:
        raise failure
    print(models)


def report_command(args: argparse.Namespace) -> int:
    """`report`: the dashboard from the marts of the configured destination."""
    from .dashboard import write_report
    from .models import DIALECTS
    from .pipeline import make_pipeline

    pipeline = make_pipeline(args.destination, dataset_name(args))
    if pipeline.destination.destination_name not in DIALECTS:
        raise ConfigError(f"the report reads SQL models; {args.destination!r} is not a SQL destination.")
    try:
        path = write_report(pipeline, args.output)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.output}: {exc.strerror}; pick another --output.") from None
    except Exception as exc:  # noqa: BLE001 - most likely the models were never built
        raise ZapRunsError(f"cannot read the SQL models ({first_line(exc, 200)}); run a sync first, or "
                           "`python -m pipelines.zap_runs models`.") from None
    print(f"report written to {path}")
    return EXIT_OK


def rebuild_models(pipeline) -> str:
    """Rebuild the SQL models after a sync; one summary line."""
    from .models import DIALECTS, build_models

    if pipeline.destination.destination_name not in DIALECTS:
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


