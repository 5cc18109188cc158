"""The simulator's command line: flags for the world, the rate rule and every fault knob."""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import NoReturn

from .accounts import (
    DRAWN,
    HEAVY_ERROR_SCALE,
    HEAVY_HISTORY_DAYS,
    HEAVY_STREAKS_PER_WEEK,
    MIX_HISTORY_DAYS,
    MIXES,
    expected_runs,
    heavy_tiers,
    make_mix,
)
from .eviction import DEFAULT_WORLD_MEMORY_MB
from .faults import Faults
from .server import Simulator
from .sharedclock import SharedClock
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
    parser.add_argument("--clock-file", metavar="PATH",
                        help="run on the virtual clock shared through PATH instead of real time: the "
                             "worlds, token lifetimes, the rate rule, Retry-After and "
                             "X-RateLimit-Reset follow it, and it moves only when a process moves "
                             "it. The process that drives time makes PATH first, with "
                             "pipelines.simulator.SharedClock(PATH, start=...) (16 bytes: now and "
                             "the clock's origin, int64 microseconds since the epoch)")
    world = parser.add_argument_group(
        "the simulated account", "A --profile names an account; a flag given wins over its value.")
    world.add_argument("--profile", choices=list(PROFILES), default="default",
                       help="busy: 100,000 runs a day (pair with a few --days); delay-heavy: about "
                            "5,000 runs held by 1-30 day Delays; replay-heavy: failed runs replayed "
                            "within hours and days later (default: default)")
    # The account's flags default to None, "not given", so that a --profile's values stand.
    world.add_argument("--seed", type=int, help="world seed (default 7); with --accounts, the "
                                                 "mix's seed (default 1)")
    world.add_argument("--zaps", type=_number(int, 1), metavar="N", help="number of zaps (default 25)")
    world.add_argument("--runs-per-day", type=_number(float, 0.0), metavar="N",
                       help="runs a day across all zaps (default 800; busy: 100000)")
    world.add_argument("--days", type=_number(float, 0.0), metavar="DAYS",
                       help="days of history (default 35; with --accounts 7, --mix heavy 1)")
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
    world.add_argument("--error-scale", type=_number(float, 0.0, 3.0), metavar="FACTOR",
                       help="every zap's usual chance of failing times this; flaky zaps' bursts of "
                            f"failures stay (default 1; --mix heavy: {HEAVY_ERROR_SCALE:g})")
    world.add_argument("--streaks-per-week", type=_number(float, 0.0), metavar="N",
                       help="about this many times a week a zap (picked by its share of the runs) "
                            "fails every run for 1 to 6 hours, as when an app is disconnected "
                            f"(default 0; --mix heavy: {HEAVY_STREAKS_PER_WEEK:g})")
    many = parser.add_argument_group(
        "many accounts", "One world per account, each chosen by its access token. The mix draws "
        "each account's --seed, --zaps and --runs-per-day; the other account flags apply to all.")
    many.add_argument("--accounts", type=_number(int, 1), metavar="N",
                      help="serve N accounts (acct-0001, ...) of a --mix; the default mix: mostly "
                           "quiet (2-50 runs a day), some of 800 a day, about 1 in 100 busy "
                           "(2,000-5,000 a day); each world is built on its first request. Prints "
                           "each name and access token")
    many.add_argument("--mix", choices=list(MIXES), default=None,
                      help="default: as above; heavy: heavy-tailed, about 20 runs a day an account "
                           "(200,000 at 10,000 accounts), the busiest 1%% making half of them, the "
                           "next 9%% two fifths, the other 90%% a tenth; about 3%% fail, flaky zaps "
                           "in bursts (default: default)")
    many.add_argument("--world-memory-mb", type=_number(float, 0.0), metavar="MB",
                      help="estimated memory the built worlds may hold (about 4 KB a run); past it "
                           "the least recently asked-for are evicted and built again, the same, "
                           f"on their next request; 0: never evict (default {DEFAULT_WORLD_MEMORY_MB:g}, "
                           "10,000 accounts of --mix heavy in 2 GB)")
    many.add_argument("--accounts-file", metavar="PATH",
                      help="with --accounts: write the accounts to PATH as JSON Lines (name, "
                           "access_token, refresh_token, client_id, client_secret: an object a "
                           "line, as the sync's accounts_file reads) instead of printing them")
    limits = parser.add_argument_group("rate limiting and tokens")
    limits.add_argument("--rate-limit", type=_number(int, 0), default=60, metavar="N",
                        help="requests per minute per client; 0 turns limiting off and drops the "
                             "X-RateLimit-* headers (default 60)")
    limits.add_argument("--partner-limit", type=_number(int, 0), default=150, metavar="N",
                        help="requests per minute over all clients and accounts, while --rate-limit "
                             "is on; 0: none (default 150, as Zapier's per-partner limit)")
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


def _knob_fields() -> list[dataclasses.Field]:
    """The WorldConfig fields a flag sets: all but the scripted episodes (tests script them)."""
    return [field for field in dataclasses.fields(WorldConfig) if field.name != "episodes"]


def world_config(args: argparse.Namespace) -> WorldConfig:
    """The account the flags describe: the --profile's knobs, then every account flag given."""
    return WorldConfig.profile(args.profile, **_given(args))


def _given(args: argparse.Namespace) -> dict[str, object]:
    """The WorldConfig knobs whose flags were given."""
    named = {field.name: getattr(args, _flag(field.name)[2:].replace("-", "_"))
             for field in _knob_fields()}
    return {name: value for name, value in named.items() if value is not None}


def _in_flags(message: str) -> str:
    """A WorldConfig error, its knobs named as the flags that set them."""
    for field in _knob_fields():
        if "_" in field.name:
            message = re.sub(rf"\b{field.name}\b", _flag(field.name), message)
    return message


def _knobs(config: WorldConfig) -> str:
    default = WorldConfig()
    changed = [f"{f.name}={getattr(config, f.name):g}" for f in _knob_fields()
               if getattr(config, f.name) != getattr(default, f.name)]
    return ", ".join(changed) or "every knob at its default"


def mix_overrides(args: argparse.Namespace) -> dict[str, object]:
    """With --accounts: the knobs every account of the mix shares (the account flags given)."""
    if args.profile != "default":
        raise ValueError("--profile describes one account, and with --accounts the mix sizes each: "
                         "leave out --profile")
    given = {name: value for name, value in _given(args).items() if name != "seed"}
    clash = [_flag(name) for name in sorted(DRAWN & given.keys())]
    if clash:
        raise ValueError(f"{' and '.join(clash)} size one account, and with --accounts the mix draws "
                         "each account's: leave them out")
    return given


def build_simulator(args: argparse.Namespace) -> Simulator:
    """The (not yet started) simulator the parsed flags describe."""
    for flag, value, what in (("--accounts-file", args.accounts_file, "lists"),
                              ("--mix", args.mix, "picks"),
                              ("--world-memory-mb", args.world_memory_mb, "bounds the worlds of")):
        if value is not None and not args.accounts:
            raise ValueError(f"{flag} {what} the accounts of --accounts N: give both")
    clock = None
    if args.clock_file is not None:
        try:
            clock = SharedClock(args.clock_file)
        except (OSError, ValueError) as exc:  # main's OSError means a port in use
            raise ValueError(f"--clock-file: {exc}") from None
    if args.accounts:
        seed = 1 if args.seed is None else args.seed
        served: dict = {"accounts": make_mix(args.mix or "default", args.accounts, seed,
                                             **mix_overrides(args))}
        if args.world_memory_mb is not None:
            served["world_memory_mb"] = args.world_memory_mb or None
    else:
        served = {"world": World(world_config(args), clock)}
    faults = Faults(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Faults)})
    faults.script = list(args.script)  # the server pops from it; args keep theirs
    ttl = timedelta(seconds=args.access_ttl) if args.access_ttl else None
    return Simulator(**served, faults=faults, rate_limit=args.rate_limit or None,
                     partner_limit=args.partner_limit or None, cooldown=args.cooldown,
                     access_ttl=ttl, host=args.host, port=args.port, clock=clock)


def _limits(args: argparse.Namespace) -> str:
    if not args.rate_limit:
        return "off"
    partner = f", {args.partner_limit}/minute per partner" if args.partner_limit else ""
    return f"{args.rate_limit}/minute per client{partner}"


def write_accounts(sim: Simulator, path: str) -> None:
    """The --accounts-file: a JSON object a line, written whole before the banner says it is there."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        for account in sim.accounts.values():
            # The fields the sync's accounts_file reads: it can take this file as it is.
            out.write(json.dumps({"name": account.name, "access_token": account.token,
                                  "refresh_token": sim.issue_refresh(account.name),
                                  "client_id": sim.tokens.client_id,
                                  "client_secret": sim.tokens.client_secret}) + "\n")
    os.replace(partial, path)


def _print_accounts(sim: Simulator, args: argparse.Namespace) -> None:
    accounts = list(sim.accounts.values())
    runs = sum(expected_runs(account.config) for account in accounts)
    if args.mix == "heavy":
        (_, top, _), (_, middle, _), (_, rest, _) = heavy_tiers(len(accounts))
        daily = sum(account.config.runs_per_day for account in accounts)
        sizes = (f"heavy-tailed: {top:,} make half of the {daily:,.0f} runs a day, {middle:,} two "
                 f"fifths, {rest:,} a tenth")
        shared = {"history_days": HEAVY_HISTORY_DAYS, "error_scale": HEAVY_ERROR_SCALE,
                  "streaks_per_week": HEAVY_STREAKS_PER_WEEK}
    else:
        kinds = collections.Counter(account.kind for account in accounts)
        sizes = f"{kinds['quiet']} quiet, {kinds['default']} default-sized, {kinds['busy']} busy"
        shared = {"history_days": MIX_HISTORY_DAYS}
    print(f"Zapier Partner API simulator on {sim.base_url} ({len(accounts)} accounts: {sizes}; "
          f"about {runs:,.0f} runs once all are built, each world on its account's first request)")
    print(f"  rate limit:    {_limits(args)}; faults: {_faults_on(sim.faults)}")
    shared.update(mix_overrides(args))
    bound = sim.worlds.memory_mb
    evicted = "never evicted" if bound is None else f"idle ones evicted past {bound:g} MB (estimated)"
    seed = 1 if args.seed is None else args.seed
    print(f"  accounts:      the {args.mix or 'default'} mix; mix seed {seed}; "
          f"every account: {', '.join(f'{k}={v:g}' for k, v in shared.items())}; worlds: {evicted}")
    _print_clock(sim, args)
    print(f"  refresh:       client_id {sim.tokens.client_id}, client_secret "
          f"{sim.tokens.client_secret}, token_url {sim.base_url}/oauth/token/")
    if args.accounts_file:
        print(f"  tokens:        {args.accounts_file} (a JSON object a line: name, access_token, "
              "refresh_token, client_id, client_secret)")
    else:
        width = max(len(account.name) for account in accounts)
        for account in accounts:
            print(f"  {account.name:<{width}}  {account.token}  {account.kind}: "
                  f"{account.config.runs_per_day:g} runs/day, {account.config.zaps} zaps")
    env = f"SOURCES__ZAP_RUNS__BASE_URL={sim.base_url}"
    if args.accounts_file:
        print(f"  sync all: {env} python -m pipelines.zap_runs --accounts-file {args.accounts_file}")
    else:
        print("  sync all: start it with --accounts-file accounts.jsonl, then "
              f"{env} python -m pipelines.zap_runs --accounts-file accounts.jsonl")
    print(f"  sync one: {env} SOURCES__ZAP_RUNS__ACCESS_TOKEN={accounts[0].token} "
          "python -m pipelines.zap_runs")


def _print_single(sim: Simulator, args: argparse.Namespace) -> None:
    world = sim.world
    refresh = sim.tokens.issue_refresh()
    # The first two lines are read by scripts (benchmarks, tests): URL, then the access token.
    print(f"Zapier Partner API simulator on {sim.base_url} ({len(world.runs)} runs, "
          f"{len(world.zaps)} zaps)")
    print(f"  access token:  {sim.token}")
    print(f"  refresh token: {refresh} (client_id {sim.tokens.client_id}, "
          f"client_secret {sim.tokens.client_secret}, token_url {sim.base_url}/oauth/token/)")
    print(f"  rate limit:    {_limits(args)}; "
          f"faults: {_faults_on(sim.faults)}; unlisted_open_rate={world.config.unlisted_open_rate:g}")
    print(f"  account:       profile {args.profile}; {_knobs(world.config)}")
    _print_clock(sim, args)
    print(f"  try: curl -H 'Authorization: Bearer {sim.token}' '{sim.base_url}/v2/zap-runs?limit=2'")
    print(f"  sync: SOURCES__ZAP_RUNS__BASE_URL={sim.base_url} SOURCES__ZAP_RUNS__ACCESS_TOKEN={sim.token} "
          "python -m pipelines.zap_runs")


def _print_clock(sim: Simulator, args: argparse.Namespace) -> None:
    if args.clock_file is not None:
        print(f"  clock:         virtual, shared through {args.clock_file} (now "
              f"{sim.clock.now().isoformat()}): it moves only when a process moves it")


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
    if args.accounts_file:
        try:
            write_accounts(sim, args.accounts_file)
        except OSError as exc:
            sim.stop()
            print(f"{PROG}: error: cannot write --accounts-file {args.accounts_file} ({exc.strerror}); "
                  "pick a path in a folder that exists and is writable", file=sys.stderr)
            return 2
    if args.accounts:
        _print_accounts(sim, args)
    else:
        _print_single(sim, args)
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    return 0
