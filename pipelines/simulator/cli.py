"""The simulator's command line: flags for the world, the rate rule and every fault knob."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import NoReturn

from .faults import Faults
from .server import Simulator
from .world import PROFILES, World, WorldConfig

PROG = "python -m pipelines.simulator"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (its usage would run to a dozen with these flags)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, low: float | None = None, high: float | None = None,
            above: bool = False) -> Callable[[str], float]:
    """An argparse type: `kind` of `raw`, within [low, high] (or strictly above `low`)."""
    def convert(raw: str) -> float:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {raw!r}") from None
        if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)) \
                or (high is not None and value > high):
            span = (f"above {low:g}" if above else f"at least {low:g}") if high is None \
                else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {raw!r}")
        return value
    return convert


RATE = _number(float, 0.0, 1.0)
SECONDS = _number(float, 0.0)


def _statuses(raw: str) -> list[int]:
    try:
        codes = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected status codes like 500,429, got {raw!r}") from None
    if not codes or any(code != 200 and not 400 <= code <= 599 for code in codes):
        raise argparse.ArgumentTypeError(f"expected 200 or error statuses (400-599), got {raw!r}")
    return codes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, usage="%(prog)s [options]",
        description="Serve a simulated Zapier Partner API (GET /v2/zap-runs, POST /oauth/token/) "
                    "on 127.0.0.1 so the sync, curl or a browser can talk to it. Rates are shares "
                    "of requests (0..1); all faults are off by default.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_number(int, 0, 65535), default=8787,
                        help="port (default 8787; 0 picks one)")
    world = parser.add_argument_group(
        "the simulated account", "A --profile names an account; a flag given wins over its value.")
    world.add_argument("--profile", choices=list(PROFILES), default="default",
                       help="busy: 100,000 runs a day (pair with a few --days); delay-heavy: about "
                            "5,000 runs held by 1-30 day Delays; replay-heavy: failed runs replayed "
                            "within hours and days later (default: default)")
    # The account's flags default to None, "not given", so that a --profile's values stand.
    world.add_argument("--seed", type=int, help="world seed (default 7)")
    world.add_argument("--zaps", type=_number(int, 1), metavar="N", help="number of zaps (default 25)")
    world.add_argument("--runs-per-day", type=_number(float, 0.0), metavar="N",
                       help="runs a day across all zaps (default 800; busy: 100000)")
    world.add_argument("--days", type=_number(float, 0.0), metavar="DAYS",
                       help="days of history (default 35)")
    world.add_argument("--retention-days", type=_number(float, 0.0, above=True), metavar="DAYS",
                       help="runs older than this many days are purged, as Zapier does (default 60)")
    world.add_argument("--replay-max-hours", type=_number(float, 0.0), metavar="HOURS",
                       help="failed runs replayed by hand within this many hours; 0: never (default 12)")
    world.add_argument("--replay-share", type=RATE, metavar="RATE",
                       help="share of failed runs replayed by hand within --replay-max-hours "
                            "(default 0.2; replay-heavy: 0.1)")
    world.add_argument("--late-replay-share", type=RATE, metavar="RATE",
                       help="share of failed runs replayed by hand 1 to --late-replay-max-days days "
                            "after they failed (default 0; replay-heavy: 0.2)")
    world.add_argument("--late-replay-max-days", type=_number(float, 1.0), metavar="DAYS",
                       help="latest such a replay comes (default 3)")
    world.add_argument("--delayed-runs", type=_number(int, 0), metavar="N",
                       help="about this many runs held by a long Delay step at any time, on top of "
                            "--runs-per-day (default 0; delay-heavy: 5000)")
    world.add_argument("--delay-min-days", type=_number(float, 0.0, above=True), metavar="DAYS",
                       help="shortest of those Delays (default 1)")
    world.add_argument("--delay-max-days", type=_number(float, 0.0, above=True), metavar="DAYS",
                       help="longest of those Delays (default 30)")
    world.add_argument("--unlisted-open-rate", type=RATE, metavar="RATE",
                       help="share of runs that first show a status the contract does not list "
                            "(queued, waiting), then settle as success or error (default 0)")
    world.add_argument("--unlisted-settle-hours", type=_number(float, 0.0, above=True), metavar="HOURS",
                       help="those runs settle within this many hours (default 6)")
    limits = parser.add_argument_group("rate limiting and tokens")
    limits.add_argument("--rate-limit", type=_number(int, 0), default=60, metavar="N",
                        help="requests per minute per client; 0 turns limiting off and drops the "
                             "X-RateLimit-* headers (default 60)")
    limits.add_argument("--cooldown", type=SECONDS, default=60.0, metavar="SECONDS",
                        help="seconds refused after a 429 (default 60)")
    limits.add_argument("--access-ttl", type=_number(float, 0.0, above=True), default=None, metavar="SECONDS",
                        help="lifetime of refreshed access tokens, in seconds (default: no expiry)")
    faults = parser.add_argument_group("faults (what real servers do wrong)")
    faults.add_argument("--body-shape", choices=["array", "object"], default="array",
                        help="array: the contract's page; object: what clients see (default array)")
    faults.add_argument("--max-limit", type=_number(int, 1), default=None, metavar="N",
                        help="silently cap the page size at this many runs")
    faults.add_argument("--order", choices=["desc", "asc", "shuffled"], default="desc",
                        help="order of runs by trigger time (default desc)")
    faults.add_argument("--error-rate", type=RATE, default=0.0, metavar="RATE", help="share answered 500")
    faults.add_argument("--unavailable-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share answered 503 with Retry-After")
    faults.add_argument("--html-error-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share answered 502 with an HTML page")
    faults.add_argument("--truncate-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share of 200 bodies cut off half way")
    faults.add_argument("--timeout-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share that hang for --hang-seconds before answering")
    faults.add_argument("--hang-seconds", type=SECONDS, default=5.0, metavar="SECONDS", help="default 5")
    faults.add_argument("--slow-seconds", type=SECONDS, default=0.0, metavar="SECONDS",
                        help="added to every response (default 0)")
    faults.add_argument("--short-page-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share of pages with fewer runs than asked")
    faults.add_argument("--overlap-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share of pages starting a few runs early (duplicates across pages)")
    faults.add_argument("--drop-next-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share of pages whose links.next is null though more runs remain")
    faults.add_argument("--inflate-count", type=_number(int, 0), default=0, metavar="N",
                        help="meta.count claims this many more runs than exist (default 0)")
    faults.add_argument("--corrupt-rate", type=RATE, default=0.0, metavar="RATE",
                        help="share of pages with one run that breaks the contract")
    faults.add_argument("--corruption", choices=["missing_id", "bad_zap_id", "bad_time", "not_a_list"],
                        default="missing_id", help="how that run is broken (default missing_id)")
    faults.add_argument("--retry-after-format", choices=["seconds", "http-date", "none"],
                        default="seconds", help="Retry-After on 429 and 503 (default seconds)")
    faults.add_argument("--fault-retry-after", type=SECONDS, default=2.0, metavar="SECONDS",
                        help="seconds an injected 429/503 asks the client to wait (default 2)")
    faults.add_argument("--script", type=_statuses, default=[], metavar="CODES",
                        help="answer the first requests with these statuses in order, e.g. 500,429,503 "
                             "(200: answer normally)")
    return parser


def _flag(field: str) -> str:
    """The flag of a WorldConfig field: its name with dashes (history_days is --days)."""
    return "--days" if field == "history_days" else "--" + field.replace("_", "-")


def world_config(args: argparse.Namespace) -> WorldConfig:
    """The account the flags describe: the --profile's knobs, then every account flag given."""
    given = {}
    for field in dataclasses.fields(WorldConfig):
        value = getattr(args, _flag(field.name)[2:].replace("-", "_"))
        if value is not None:
            given[field.name] = value
    return WorldConfig.profile(args.profile, **given)


def _in_flags(message: str) -> str:
    """A WorldConfig error, its knobs named as the flags that set them."""
    for field in dataclasses.fields(WorldConfig):
        if "_" in field.name:
            message = re.sub(rf"\b{field.name}\b", _flag(field.name), message)
    return message


def _knobs(config: WorldConfig) -> str:
    default = WorldConfig()
    changed = [f"{f.name}={getattr(config, f.name):g}" for f in dataclasses.fields(WorldConfig)
               if getattr(config, f.name) != getattr(default, f.name)]
    return ", ".join(changed) or "every knob at its default"


def build_simulator(args: argparse.Namespace) -> Simulator:
    """The (not yet started) simulator the parsed flags describe."""
    world = World(world_config(args))
    faults = Faults(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Faults)})
    faults.script = list(args.script)  # the server pops from it; args keep theirs
    ttl = timedelta(seconds=args.access_ttl) if args.access_ttl else None
    return Simulator(world, faults=faults, rate_limit=args.rate_limit or None,
                     cooldown=args.cooldown, access_ttl=ttl, host=args.host, port=args.port)


def _faults_on(faults: Faults) -> str:
    default = Faults()
    changed = [f"{f.name}={getattr(faults, f.name)}" for f in dataclasses.fields(Faults)
               if getattr(faults, f.name) != getattr(default, f.name)]
    return ", ".join(changed) or "none"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sim = build_simulator(args)
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
              "pick another --port", file=sys.stderr)
        return 2
    except ValueError as exc:  # knobs valid alone but not together (--delay-min-days > max)
        print(f"{PROG}: error: {_in_flags(str(exc))} (see --help)", file=sys.stderr)
        return 2
    world = sim.world
    refresh = sim.tokens.issue_refresh()
    # The first two lines are read by scripts (benchmarks, tests): URL, then the access token.
    print(f"Zapier Partner API simulator on {sim.base_url} ({len(world.runs)} runs, "
          f"{len(world.zaps)} zaps)")
    print(f"  access token:  {sim.token}")
    print(f"  refresh token: {refresh} (client_id {sim.tokens.client_id}, "
          f"client_secret {sim.tokens.client_secret}, token_url {sim.base_url}/oauth/token/)")
    print(f"  rate limit:    {f'{args.rate_limit}/minute' if args.rate_limit else 'off'}; "
          f"faults: {_faults_on(sim.faults)}; unlisted_open_rate={world.config.unlisted_open_rate:g}")
    print(f"  account:       profile {args.profile}; {_knobs(world.config)}")
    print(f"  try: curl -H 'Authorization: Bearer {sim.token}' '{sim.base_url}/v2/zap-runs?limit=2'")
    print(f"  sync: SOURCES__ZAP_RUNS__BASE_URL={sim.base_url} SOURCES__ZAP_RUNS__ACCESS_TOKEN={sim.token} "
          "python -m pipelines.zap_runs")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    return 0
