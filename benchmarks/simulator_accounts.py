"""Benchmark: the simulator's memory and time with many accounts, each asked for one page.

Every account's world is built on its first request; this prints the process's RSS before any
request, then after every account was hit once (a page of 100, over HTTP), with the time it took
and the runs held, by kind of account.
Usage: python benchmarks/simulator_accounts.py [--accounts 1000] [--days 35] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import resource
import time

import httpx

from pipelines.simulator import Simulator


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=float, default=None, help="history of every account "
                                                                 "(default: the mix's, 7)")
    parser.add_argument("--seed", type=int, default=1, help="the mix's seed")
    args = parser.parse_args()
    overrides = {} if args.days is None else {"history_days": args.days}
    started = time.perf_counter()
    with Simulator.many(args.accounts, seed=args.seed, overrides=overrides, rate_limit=None) as sim, \
            httpx.Client(timeout=120) as client:
        kinds = collections.Counter(account.kind for account in sim.accounts.values())
        print(f"{args.accounts} accounts ({kinds['quiet']} quiet, {kinds['default']} default-sized, "
              f"{kinds['busy']} busy), set up in {time.perf_counter() - started:.2f} s; "
              f"RSS {rss_mb():.0f} MB, no world built")
        seconds: dict[str, float] = collections.defaultdict(float)
        runs: dict[str, int] = collections.defaultdict(int)
        hit = time.perf_counter()
        for account in sim.accounts.values():
            asked = time.perf_counter()
            response = client.get(sim.base_url + "/v2/zap-runs", params={"limit": 100},
                                  headers={"Authorization": f"Bearer {account.token}"})
            response.raise_for_status()
            seconds[account.kind] += time.perf_counter() - asked
            runs[account.kind] += len(account.world.runs)
        elapsed = time.perf_counter() - hit
        assert all(account.built for account in sim.accounts.values())
        print(f"every account hit once in {elapsed:.1f} s: {sum(runs.values()):,} runs held")
        for kind in ("quiet", "default", "busy"):
            if kinds[kind]:
                print(f"  {kind:8s} {kinds[kind]:5d} accounts  {runs[kind]:>11,} runs  "
                      f"{seconds[kind] / kinds[kind] * 1000:8.1f} ms for the first page (world built)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RSS now {rss_mb():.0f} MB; peak {peak:.0f} MB "
              f"({peak * 2**20 / max(1, sum(runs.values())):,.0f} B per run held)")


if __name__ == "__main__":
    main()
