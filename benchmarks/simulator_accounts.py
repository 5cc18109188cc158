"""Benchmark: the simulator's memory and time with many accounts.

Without --hours: every account's world is built on its first request; this prints the process's
RSS before any request, then after every account was hit once (a page of 100, over HTTP), with
the time it took and the runs held, by kind of account.

With --hours H (issue 18): the simulator runs on a VirtualClock for H simulated hours, in --steps
steps. Every account is read once over the span (its slice of the accounts at each step, in a
seeded random order) and the busiest 1% at every step, as a scheduler reads them; each read
asks for the runs triggered since the account's last read (from the span's start), page after
page of up to 1,000. Idle worlds are evicted past --world-memory-mb and built again when next
read. Prints the peak RSS, the wall time, the runs served, the worlds built and evicted.
Usage: python benchmarks/simulator_accounts.py [--accounts 1000] [--mix default|heavy] [--days D]
       [--seed 1] [--hours 0] [--steps 24] [--world-memory-mb MB]
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import time
from datetime import timedelta

import httpx

from pipelines.simulator import Simulator, VirtualClock
from pipelines.simulator.accounts import MIXES
from pipelines.simulator.eviction import DEFAULT_WORLD_MEMORY_MB


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hit_once(sim: Simulator, client: httpx.Client, kinds: collections.Counter) -> None:
    """Every account asked for one page of 100, now."""
    seconds: dict[str, float] = collections.defaultdict(float)
    runs: dict[str, int] = collections.defaultdict(int)
    hit = time.perf_counter()
    for account in sim.accounts.values():
        asked = time.perf_counter()
        response = client.get(sim.base_url + "/v2/zap-runs", params={"limit": 100},
                              headers={"Authorization": f"Bearer {account.token}"})
        response.raise_for_status()
        seconds[account.kind] += time.perf_counter() - asked
        world = account.resident()  # just asked for: built (and not evicted yet)
        runs[account.kind] += 0 if world is None else len(world.runs)
    elapsed = time.perf_counter() - hit
    held = sum(len(world.runs) for world in (a.resident() for a in sim.accounts.values()) if world)
    print(f"every account hit once in {elapsed:.1f} s: {sum(runs.values()):,} runs built in all; "
          f"{len(sim.worlds)} worlds built now, holding {held:,} runs ({sim.worlds.evictions} "
          "evicted past the bound)")
    for kind in ("quiet", "default", "busy"):
        if kinds[kind]:
            print(f"  {kind:8s} {kinds[kind]:5d} accounts  {runs[kind]:>11,} runs  "
                  f"{seconds[kind] / kinds[kind] * 1000:8.1f} ms for the first page (world built)")
    print(f"RSS now {rss_mb():.0f} MB; peak {peak_mb():.0f} MB "
          f"({rss_mb() * 2**20 / max(1, held):,.0f} B of RSS per run held now)")


def read_since(sim: Simulator, client: httpx.Client, token: str, since: str) -> tuple[int, int]:
    """(runs, requests): every run triggered since `since`, page by page."""
    runs = requests = 0
    url, params = sim.base_url + "/v2/zap-runs", {"from_date": since, "limit": 1000}
    while url:
        response = client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        page = response.json()[0]
        runs, requests = runs + len(page["data"]), requests + 1
        url, params = page["links"]["next"], None
    return runs, requests


def live_span(sim: Simulator, clock: VirtualClock, client: httpx.Client,
              args: argparse.Namespace) -> None:
    """H simulated hours: every account read once, the busiest 1% every step."""
    names = list(sim.accounts)
    random.Random(args.seed).shuffle(names)
    by_runs = sorted(names, key=lambda name: -sim.accounts[name].config.runs_per_day)
    busiest = by_runs[:max(1, len(names) // 100)]
    reads: collections.Counter = collections.Counter()
    last = dict.fromkeys(names, clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    step = timedelta(hours=args.hours) / args.steps
    served = requests = 0
    peak_worlds = 0
    started = time.perf_counter()
    for i in range(args.steps):
        clock.advance(step)
        now = clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        share = names[i * len(names) // args.steps:(i + 1) * len(names) // args.steps]
        for name in dict.fromkeys([*share, *busiest]):
            runs, asked = read_since(sim, client, sim.accounts[name].token, last[name])
            served, requests, last[name] = served + runs, requests + asked, now
            reads[name] += 1
        peak_worlds = max(peak_worlds, len(sim.worlds))
        if (i + 1) % max(1, args.steps // 6) == 0 or i + 1 == args.steps:
            print(f"  {(i + 1) * step.total_seconds() / 3600:5.1f} h simulated, "
                  f"{time.perf_counter() - started:6.1f} s: {served:>9,} runs served in "
                  f"{requests:,} requests; {len(sim.worlds):,} worlds built "
                  f"({sim.worlds.estimated_mb:,.0f} MB estimated), {sim.worlds.evictions:,} "
                  f"evicted so far; RSS {rss_mb():,.0f} MB", flush=True)
    wall = time.perf_counter() - started
    builds = sum(account.builds for account in sim.accounts.values())
    first = sum(1 for account in sim.accounts.values() if account.builds)
    unread = sum(1 for name in names if not reads[name])
    print(f"{args.hours:g} simulated hours in {wall:.1f} s of wall time: {served:,} runs served in "
          f"{requests:,} requests; {len(names) - unread:,} accounts read ({unread} never), the "
          f"{len(busiest)} busiest {args.steps} times each")
    print(f"worlds: {first:,} built, {builds - first:,} rebuilt after {sim.worlds.evictions:,} "
          f"evictions; at most {peak_worlds:,} built at once, {len(sim.worlds):,} now "
          f"({sim.worlds.estimated_mb:,.0f} MB estimated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--mix", choices=list(MIXES), default="default")
    parser.add_argument("--days", type=float, default=None, help="history of every account "
                                                                 "(default: the mix's)")
    parser.add_argument("--seed", type=int, default=1, help="the mix's seed")
    parser.add_argument("--hours", type=float, default=0.0,
                        help="simulated hours on a virtual clock (default 0: hit every account "
                             "once, now)")
    parser.add_argument("--steps", type=int, default=24, help="steps of the simulated span")
    parser.add_argument("--world-memory-mb", type=float, default=DEFAULT_WORLD_MEMORY_MB,
                        help=f"the worlds' memory bound (0: never evict; default "
                             f"{DEFAULT_WORLD_MEMORY_MB:g})")
    args = parser.parse_args()
    overrides = {} if args.days is None else {"history_days": args.days}
    clock = VirtualClock() if args.hours else None
    started = time.perf_counter()
    with Simulator.many(args.accounts, seed=args.seed, overrides=overrides, mix=args.mix,
                        rate_limit=None, clock=clock,
                        world_memory_mb=args.world_memory_mb or None) as sim, \
            httpx.Client(timeout=120) as client:
        kinds = collections.Counter(account.kind for account in sim.accounts.values())
        daily = sum(account.config.runs_per_day for account in sim.accounts.values())
        print(f"{args.accounts} accounts of the {args.mix} mix ({kinds['quiet']} quiet, "
              f"{kinds['default']} default-sized, {kinds['busy']} busy; {daily:,.0f} runs a day), "
              f"set up in {time.perf_counter() - started:.2f} s; RSS {rss_mb():.0f} MB, no world "
              f"built; worlds evicted past {args.world_memory_mb:g} MB (estimated)")
        if args.hours:
            live_span(sim, clock, client, args)
        else:
            hit_once(sim, client, kinds)
        print(f"wall time {time.perf_counter() - started:.1f} s; RSS now {rss_mb():.0f} MB, "
              f"peak {peak_mb():.0f} MB (ru_maxrss)")


if __name__ == "__main__":
    main()
