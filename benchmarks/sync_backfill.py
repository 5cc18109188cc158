"""Benchmark: a backfill and an incremental sync against the simulator in another process.

Prints runs/s end to end, the sync process's peak memory, and the request counts.
Usage:
  python benchmarks/sync_backfill.py --runs 200000                      # unthrottled
  python benchmarks/sync_backfill.py --runs 6000 --rate 120             # rate-limited (req/min)
  python benchmarks/sync_backfill.py --runs 200000 --again              # + the backfill again, merged

Every sync merges (runs and their nested steps, from staging, in one transaction); `--again`
also times the same backfill a second time, when every run is already loaded and is replaced.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta


def start_simulator(runs: int, days: int, rate: int) -> tuple[subprocess.Popen, str, str]:
    cmd = [sys.executable, "-m", "pipelines.simulator", "--port", "0", "--days", str(days),
           "--runs-per-day", str(runs / days), "--rate-limit", str(rate), "--cooldown", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    banner = proc.stdout.readline()
    token = proc.stdout.readline().split("access token:")[1].strip()
    return proc, banner.split(" on ")[1].split()[0], token, banner


def run_sync(env: dict, cwd: str, since: str) -> tuple[float, str]:
    started = time.perf_counter()
    since_args = ["--since", since] if since else []
    done = subprocess.run([sys.executable, "-m", "pipelines.zap_runs", *since_args, "--verbose",
                           "--log-level", "WARNING"], env=env, cwd=cwd, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"sync failed: {done.stderr[-2000:]}")
    return elapsed, done.stdout


def figure(summary: str, label: str) -> int:
    match = re.search(rf"{label}\s+([\d,]+)", summary)
    return int(match.group(1).replace(",", "")) if match else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=200_000, help="runs in the simulated history")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=int, default=0, help="requests/minute, server and client (0: off)")
    parser.add_argument("--again", action="store_true", help="then the same backfill again (merged)")
    args = parser.parse_args()

    sim, base_url, token, banner = start_simulator(args.runs, args.days, args.rate)
    print(banner.strip())
    work = tempfile.mkdtemp(prefix="zap-runs-bench-")
    env = {**os.environ, "SOURCES__ZAP_RUNS__BASE_URL": base_url,
           "SOURCES__ZAP_RUNS__ACCESS_TOKEN": token, "DLT_DATA_DIR": os.path.join(work, "dlt"),
           "SOURCES__ZAP_RUNS__REQUESTS_PER_MINUTE": str(args.rate)}
    since = (datetime.now(UTC) - timedelta(days=args.days + 1)).strftime("%Y-%m-%d")
    try:
        elapsed, summary = run_sync(env, work, since)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        runs, requests = figure(summary, "runs"), figure(summary, "requests")
        print(summary)
        print(f"backfill: {runs:,} runs in {elapsed:.1f} s = {runs / elapsed:,.0f} runs/s end to end; "
              f"peak RSS of the sync process {peak_mb:.0f} MB")
        if args.rate:
            ideal = (requests - 1) / (args.rate / 60)  # the first request goes out at once
            limited = re.search(r"(\d+) rate limited", summary).group(1)
            sync_s = float(re.search(r"elapsed\s+([\d.]+) s", summary).group(1))
            fetch_s = float(re.search(r"\(([\d.]+) s fetching\)", summary).group(1))
            print(f"rate-limited: {requests} requests at {args.rate}/min need {ideal:.1f} s; "
                  f"fetching took {fetch_s:.1f} s ({(fetch_s / ideal - 1) * 100:+.1f}%), the whole "
                  f"sync {sync_s:.1f} s ({(sync_s / ideal - 1) * 100:+.1f}%, with normalize, load "
                  f"and models), the process {elapsed:.1f} s; {limited} responses were 429")
        if args.again:
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            elapsed, summary = run_sync(env, work, since)
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            runs = figure(summary, "runs")
            peak = f"{peak_mb:.0f} MB" if peak_mb > before else f"at most {before:.0f} MB"
            print(summary)
            print(f"backfill again (merged): {runs:,} runs in {elapsed:.1f} s = {runs / elapsed:,.0f} "
                  f"runs/s end to end; peak RSS of the sync process {peak}")
        for lookback in ("0.25", "24"):  # the default, and the old default
            elapsed2, summary2 = run_sync({**env, "SOURCES__ZAP_RUNS__LOOKBACK_HOURS": lookback},
                                          work, "")
            fetched2, requests2 = figure(summary2, "runs"), figure(summary2, "requests")
            spent = re.search(r"spent on\s+(.*)", summary2).group(1)
            print(f"incremental, lookback {lookback} h: {requests2} requests for {fetched2} runs "
                  f"in {elapsed2:.1f} s: {spent}")
    finally:
        sim.terminate()
        sim.wait()



if __name__ == "__main__":
    main()
