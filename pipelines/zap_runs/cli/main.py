"""Command line: `python -m pipelines.zap_runs [sync|models|report|status] [options]`, parsed and
dispatched to commands.py; errors become one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..common import settings
from ..common.errors import ConfigError, ZapRunsError, first_line, unwrap
from . import logs

log = logging.getLogger("pipelines.zap_runs")

EXIT_FAILED = 1  # a failure that is no ZapRunsError; those carry their own exit_code (common/errors.py)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.zap_runs",
        description="Sync Zapier zap runs (Partner API GET /v2/zap-runs) into DuckDB or any dlt "
                    "destination, incrementally. Configuration: .dlt/config.toml and "
                    ".dlt/secrets.toml under [sources.zap_runs], or SOURCES__ZAP_RUNS__* env vars.",
        epilog="Exit codes: 0 synced, 1 the sync failed (with many accounts: every account "
               "failed; status: the data is stale), 2 bad configuration or arguments, 3 another "
               "sync of the pipeline was still running, 4 some accounts failed or were skipped, "
               "or account entries are bad, and the others loaded (status: some accounts are "
               "failing or stale, the last pass met bad entries, or alerts wait on a failing "
               "channel; alerts test: 1 when a channel failed).")
    parser.add_argument("command", nargs="?", default="sync",
                        choices=["sync", "models", "report", "status", "forget", "alerts"],
                        help="sync (default): load new and changed runs; models: rebuild the SQL "
                             "models; report: write the HTML dashboard from the models; status: "
                             "the last pass, the last success and the accounts that need "
                             "attention (exit 1 when stale, 4 when accounts need attention); forget "
                             "--account NAME: delete one account's rows and state; alerts test: "
                             "send a sample alert to each configured channel (exit 1 when one "
                             "fails)")
    parser.add_argument("action", nargs="?", default=None, choices=["test"],
                        help="alerts: test (the only action)")
    parser.add_argument("--account", default=None, metavar="NAME",
                        help="report: one account's dashboard (default: partner-wide); status: "
                             "one account's last sync, last success and verdict; forget: the "
                             "account to delete")
    parser.add_argument("--accounts-file", default=None, metavar="PATH",
                        help="the accounts to sync, JSON Lines (one {\"name\", \"access_token\"} "
                             "object a line; docs/partners.md): for sync, status, report and "
                             "forget, instead of accounts_file under [sources.zap_runs]")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="sync only the accounts whose stable hash falls in shard I of N "
                             "(0 <= I < N), as its own pipeline with 1/N of requests_per_minute; "
                             "for warehouses that take concurrent writers (docs/partners.md, Sharding)")
    parser.add_argument("--all-accounts", action="store_true",
                        help="sync: read every account that can be read in this pass, due or not "
                             "(a first run, a manual catch-up); by default a pass over many "
                             "accounts reads the due ones, most valuable first (docs/partners.md, Freshness)")
    parser.add_argument("--loop", action="store_true",
                        help="sync continuously: read the due accounts, load at least every "
                             "--load-every seconds, rebuild the models every models_every_minutes; "
                             "SIGTERM stops it cleanly (docs/partners.md, Freshness)")
    parser.add_argument("--load-every", type=float, default=None, metavar="SECONDS",
                        help="--loop: the longest a round reads before it loads (default "
                             "load_every_seconds, 60)")
    parser.add_argument("--max-age", type=float, default=None, metavar="HOURS",
                        help="status: exit 1 when the last successful sync is older than this "
                             "(default: stale_after_hours, 6)")
    parser.add_argument("--json", action="store_true",
                        help="status: print one JSON object for monitors (the same facts; the "
                             "same exit code)")
    parser.add_argument("--verbose", action="store_true",
                        help="sync and status: also print the requests by purpose, the budget B "
                             "of what changed and the ratio (docs/operations.md, Spending the rate limit)")
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
                        help="ignore the stored cursor and watched runs and re-read the whole "
                             "window (from --since, else the API's 30 days); merged, nothing dropped")
    parser.add_argument("--lookback", type=float, default=None, metavar="HOURS",
                        help=f"re-read runs this many hours before the cursor "
                             f"(default {settings.DEFAULT_LOOKBACK_HOURS:g})")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # --help ends here, before dlt is imported
    logs.setup(args.log_level)
    from dlt.pipeline.exceptions import PipelineStepFailed

    from . import commands

    try:
        if args.json and (args.demo or args.command != "status"):
            raise ConfigError("--json is for `status` (one JSON object for monitors).")
        if (args.loop or args.load_every is not None or args.all_accounts) \
                and (args.command != "sync" or args.demo):
            raise ConfigError("--loop, --load-every and --all-accounts are for sync.")
        if args.command == "alerts" and args.action is None:
            raise ConfigError("alerts needs an action: python -m pipelines.zap_runs alerts test "
                              "(a sample alert to each configured channel).")
        if args.command != "alerts" and args.action is not None:
            raise ConfigError(f"`{args.action}` goes with `alerts` only: python -m "
                              "pipelines.zap_runs alerts test.")
        if args.demo:
            return commands.demo_command(args)
        if args.command == "alerts":
            return commands.alerts_command(args)
        if args.command == "models":
            return commands.models_command(args)
        if args.command == "report":
            return commands.report_command(args)
        if args.command == "status":
            return commands.status_command(args)
        if args.command == "forget":
            return commands.forget_command(args)
        if args.loop:
            return commands.loop_command(args)
        if args.load_every is not None:
            raise ConfigError("--load-every is for --loop.")
        return commands.sync_command(args)
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
