"""Benchmark: how many pages of 100 runs per second the simulator serves (one keep-alive client).

Usage: python benchmarks/simulator_throughput.py [--pages 1000]
"""

from __future__ import annotations

import argparse
import time

import httpx

from pipelines.simulator import Simulator, World, WorldConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    args = parser.parse_args()
    world = World(WorldConfig(seed=1, zaps=40, runs_per_day=4000, history_days=30))
    with Simulator(world, rate_limit=None) as sim, httpx.Client(
            headers={"Authorization": f"Bearer {sim.token}"}) as client:
        total = len(world.runs)
        for label in ("cold (first serialisation)", "warm"):
            started = time.perf_counter()
            for i in range(args.pages):
                offset = (i * 100) % max(1, total - 100)
                response = client.get(sim.base_url + "/v2/zap-runs",
                                       params={"limit": 100, "offset": offset})
                response.raise_for_status()
            elapsed = time.perf_counter() - started
            print(f"{label:28s} {args.pages / elapsed:8.0f} pages of 100 runs/s "
                  f"({args.pages} requests in {elapsed:.2f} s, world of {total:,} runs)")


if __name__ == "__main__":
    main()
