"""Benchmark: what hourly incremental syncs cost, against the budget B of what really changed.

For each simulated account (the simulator's profiles) a backfill of its whole history, then
--syncs incremental syncs --hours apart on a simulated clock. Per sync it prints the world's
truth (new, open, recent_errors, changed) and from it

    B = ceil(new / 100) + ceil(open / 100) + ceil(recent_errors / 100) + changed

(pipelines/simulator/budget.py), the requests the sync counts inside B (new runs, open listing,
error listing, re-checks) and apart from it (the lookback and whatever else the sync books
outside B; retries), spent/B, and the minutes all of the sync's requests take at Zapier's 60 a
minute; each profile's verdict names the purposes that spent more than their own term of B.
The simulator runs in-process with no rate limit and no faults; DuckDB goes to a temporary
folder.
Usage:
  python benchmarks/incremental_cost.py                                # all four, 6 hourly syncs
  python benchmarks/incremental_cost.py --profiles busy --syncs 12 --hours 0.5

busy is 100,000 runs a day, so it gets 2 days of history (a 200,000-run backfill); the others
keep the profile's 35 days (delay-heavy needs 30 or more for its Delays' steady state).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

from cli_args import positive  # benchmarks/ is on the path: they run as scripts

from pipelines.simulator import ManualClock, Simulator, World, WorldConfig
from pipelines.simulator.budget import snapshot, truth_budget
from pipelines.simulator.lifecycle import iso
from pipelines.simulator.world import PROFILES
from pipelines.zap_runs.warehouse.pipeline import make_pipeline, sync

PAGE = 100
HORIZON = timedelta(hours=72)  # the sync's replay_horizon_hours, and the truth's
ZAPIER_RATE = 60  # requests a minute
# Days of history per profile where the profile's own (35) would make the backfill too long.
HISTORY_DAYS = {"busy": 2.0}
# Settings environment variables a developer may have set; the benchmark runs without them.
SETTINGS_ENV = ("SOURCES__", "DESTINATION__", "ZAP_RUNS__", "RUNTIME__", "NORMALIZE__", "LOAD__",
                "EXTRACT__", "DATA_WRITER__")
# B's four terms, and the purposes the sync books requests for them under.
SHARES = ("new", "open", "errors", "rechecks")
HEADER = (f"{'sync':>4} {'new':>6} {'open':>5} {'errs':>5} {'chg':>4} {'B':>4} {'spent':>5} "
          f"{'ratio':>6}  {'new/open/err/rechk':<18} {'apart':>5} {'retry':>5} {'all':>5} "
          f"{'min@60':>6} {'B sync':>6} {'wall s':>6}  apart by purpose")


def over_share(by_purpose: dict[str, int], truth) -> dict[str, int]:
    """The purposes that spent more than their own part of B (ceil(new / page) for new runs,
    ceil(open / page) for the open listing, ceil(recent_errors / page) for the error listing,
    changed for re-checks), and by how many requests."""
    share = {"new": math.ceil(truth.new / PAGE), "open": math.ceil(truth.open / PAGE),
             "errors": math.ceil(truth.recent_errors / PAGE), "rechecks": truth.changed}
    return {p: by_purpose[p] - n for p, n in share.items() if by_purpose[p] > n}


def run_profile(name: str, args: argparse.Namespace, work: str) -> float:
    """The backfill and the incremental syncs of one account; prints its table and verdict and
    returns the largest spent/B (inf when a sync spent requests with B 0)."""
    days = HISTORY_DAYS.get(name, PROFILES[name].get("history_days", WorldConfig().history_days))
    config = WorldConfig.profile(name, seed=args.seed, history_days=days)
    # The world clock starts at noon UTC some days back, so one seed gives the same figures at
    # any hour of the day (the runs follow a daily rhythm), and ends before the real now (the
    # sync asks up to the real now).
    span = timedelta(hours=args.hours * args.syncs)
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    clock = ManualClock(noon - timedelta(days=math.ceil(span / timedelta(days=1)) + 1))
    started = time.perf_counter()
    world = World(config, clock)
    built = time.perf_counter() - started
    print(f"\n== {name}: {days:g} days of history, {config.runs_per_day:,.0f} runs/day, "
          f"{config.delayed_runs:,} held by Delays, replays {config.replay_share:g} within "
          f"{config.replay_max_hours:g} h + {config.late_replay_share:g} 1-"
          f"{config.late_replay_max_days:g} days later; retention {config.retention_days:g} days")
    print(f"world: {len(world.runs):,} runs built in {built:.1f} s")
    sim = Simulator(world, rate_limit=None).start()
    folder = os.path.join(work, name)
    pipeline = make_pipeline("duckdb", "zapier", pipeline_name=f"bench_{name.replace('-', '_')}",
                             pipelines_dir=os.path.join(folder, "dlt"),
                             credentials=os.path.join(folder, "zap_runs.duckdb"))
    source = {"base_url": sim.base_url, "access_token": sim.token, "requests_per_minute": 0,
              "page_limit": PAGE, "retention_days": config.retention_days,
              "replay_horizon_hours": HORIZON.total_seconds() / 3600, "backoff_base": 0.01}
    worst = 0.0
    try:
        mark = len(sim.zap_run_requests())
        started = time.perf_counter()
        result = sync(pipeline, since=iso(world.started_at), **source)
        wall = time.perf_counter() - started
        requests = len(sim.zap_run_requests()) - mark
        print(f"backfill: {result.runs_fetched:,} runs, {requests:,} requests "
              f"({requests / ZAPIER_RATE:,.1f} min at {ZAPIER_RATE}/min), {wall:.1f} s here")
        print(HEADER)
        over: dict[str, tuple[int, int]] = {}  # purpose: (syncs it spent over its share, most)
        for number in range(1, args.syncs + 1):
            before = snapshot(world)
            clock.advance(timedelta(hours=args.hours))
            mark = len(sim.zap_run_requests())
            started = time.perf_counter()
            spend = sync(pipeline, **source).spend
            wall = time.perf_counter() - started
            truth = truth_budget(world, before, PAGE, HORIZON)
            requests = len(sim.zap_run_requests()) - mark  # every attempt, as the server saw it
            spent, budget = spend.in_budget, truth.total
            ratio = spent / budget if budget else (0.0 if not spent else math.inf)
            worst = max(worst, ratio)
            for purpose, excess in over_share(spend.by_purpose, truth).items():
                count, most = over.get(purpose, (0, 0))
                over[purpose] = (count + 1, max(most, excess))
            split = "/".join(str(spend.by_purpose[p]) for p in SHARES)
            # What the sync counts apart from B (lookback, and whatever else it books outside).
            apart = sum(spend.by_purpose.values()) - spent
            apart_split = ", ".join(f"{p} {n:,}" for p, n in spend.by_purpose.items()
                                    if p not in SHARES and n)
            print(f"{number:>4} {truth.new:>6,} {truth.open:>5,} {truth.recent_errors:>5,} "
                  f"{truth.changed:>4,} {budget:>4,} {spent:>5,} {ratio:>6.2f}  {split:<18} "
                  f"{apart:>5,} {spend.retries:>5,} {requests:>5,} {requests / ZAPIER_RATE:>6.2f} "
                  f"{spend.budget.total:>6,} {wall:>6.1f}  {apart_split}")
        verdict = "within budget" if worst <= 1.0 else "OVER budget"
        overspent = "; ".join(f"{purpose} in {count} of {args.syncs} syncs (up to +{most:,})"
                              for purpose, (count, most) in sorted(over.items(),
                                                                   key=lambda kv: -kv[1][1]))
        print(f"verdict {name}: max ratio {worst:.2f} {'<=' if worst <= 1.0 else '>'} 1.0, "
              f"{verdict}; over their share of B: {overspent or 'none'}")
    finally:
        sim.stop()
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profiles", nargs="+", choices=list(PROFILES), default=list(PROFILES),
                        metavar="NAME", help=f"accounts to run: {', '.join(PROFILES)} (default all)")
    parser.add_argument("--syncs", type=positive(int), default=6,
                        help="incremental syncs after the backfill (default 6)")
    parser.add_argument("--hours", type=positive(float), default=1.0,
                        help="simulated hours between syncs (default 1)")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default 7)")
    args = parser.parse_args()

    for name in list(os.environ):
        if name.startswith(SETTINGS_ENV):
            del os.environ[name]
    work = tempfile.mkdtemp(prefix="zap-runs-cost-")
    os.environ["DLT_DATA_DIR"] = os.path.join(work, "dlt-data")
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.chdir(work)  # no .dlt/config.toml of the checkout: every setting is the default or given
    print(f"{args.syncs} incremental syncs {args.hours:g} h apart per profile, page {PAGE}, "
          f"replay horizon {HORIZON.total_seconds() / 3600:g} h; work folder {work}")
    print("columns: the truth's new, open, errs (recent errors), chg (changed) and B; spent: "
          "the requests the sync counts in B, ratio spent/B, their split by purpose; apart: the "
          "requests the sync counts outside B (split at the end of the line), retries; all: every "
          "request the server saw, min@60 the minutes they take at 60/min; B sync: the sync's own "
          "view of B; wall s: the sync's time here")
    started = time.perf_counter()
    worst = {}
    for name in args.profiles:
        profile_started = time.perf_counter()
        worst[name] = run_profile(name, args, work)
        print(f"{name}: {time.perf_counter() - profile_started:.1f} s")
    print(f"\nelapsed {time.perf_counter() - started:.1f} s")
    for name, ratio in worst.items():
        print(f"{name}: max ratio {ratio:.2f}, {'<= 1.0' if ratio <= 1.0 else '> 1.0, over B'}")


if __name__ == "__main__":
    main()
