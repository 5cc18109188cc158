"""Benchmark: how fresh the warehouse stays for every account under one rate budget (issue 18).

The shipping loop (pipelines/zap_runs/cli/loop.py: the scheduler, the reads, dlt's loads) runs in
this process against the simulator in another (`--mix heavy`: about 20 runs a day an account,
1% of the accounts make half of them, 3% of runs fail, some zaps fail in streaks), both on one
simulated clock (SharedClock): the pacer moves it at the rate, and each round's load and models
move it by the real time they took. First a catch-up (every account read once, unpaced, from a
simulator without a rate limit, on a clock that stands still), then --hours of simulated time:

- scheduled: `--loop` as shipped (due accounts, most valuable first; a load every --load-every);
- pass:      today's order, every account in every pass (`--all-accounts`), a load per pass.

Reported per order and rate: detection latency of failed runs (from the run's end to the load
that committed it as failed; p50/p90/p99/max, by tier of account; failures still unloaded at the
end counted apart), reads an hour per account and requests a read by tier, the longest any
account went unread (between its reads; accounts never read again since the start count to the
end), requests by purpose, loads, peak RSS of the loop's process (the catch-up runs in a process
before it, the simulator in its own), the pipeline state's size and the pipeline folder's.
Each (order, rate) runs in its own process. Usage:

  python benchmarks/freshness.py --accounts 200 --hours 2           # a quick look
  python benchmarks/freshness.py --accounts 10000 --hours 12 --rates 150,60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_args import positive  # benchmarks/ is on the path: they run as scripts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULT = "freshness result: "
TIERS = ("top", "middle", "rest")


def start_simulator(work: Path, args, rate: int | None, tag: str) -> tuple[subprocess.Popen, str, Path]:
    """The simulator in its own process on the shared clock; (process, base URL, accounts file)."""
    accounts = work / f"accounts-{tag}.jsonl"
    command = [sys.executable, "-m", "pipelines.simulator", "--port", "0", "--accounts",
               str(args.accounts), "--mix", "heavy", "--seed", str(args.seed), "--clock-file",
               str(work / "clock"), "--accounts-file", str(accounts),
               "--rate-limit", str(rate or 0), "--partner-limit", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if "simulator on http" in line:
            base = line.split(" on ", 1)[1].split()[0]
            break
    else:
        raise SystemExit(f"the simulator did not start: {process.wait()}")
    for line in process.stdout:  # the banner ends with the tokens line once the file is written
        if line.strip().startswith("tokens:"):
            break
    # Static tokens only: no token store per account.
    rows = [json.loads(line) for line in accounts.read_text().splitlines()]
    accounts.write_text("".join(json.dumps({"name": r["name"], "access_token": r["access_token"]})
                                + "\n" for r in rows))
    return process, base, accounts


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    if process.poll() is None:
        process.kill()


class Running:
    """The shared simulated clock as the sync sees it: it runs at real speed (the sync's own
    work: parsing, planning, loads), and a sleep (the pacer's waits at the rate, the loop's
    waits between rounds) jumps it forward at once."""

    def __init__(self, shared) -> None:
        self.shared = shared
        self._real = time.monotonic()

    def _catch_up(self) -> None:
        real = time.monotonic()
        self.shared.advance(timedelta(seconds=real - self._real))
        self._real = real

    def now(self) -> datetime:
        self._catch_up()
        return self.shared.now()

    def monotonic(self) -> float:
        self._catch_up()
        return self.shared.monotonic()

    def sleep(self, seconds: float) -> None:
        self._catch_up()
        self.shared.sleep(seconds)

    @contextlib.contextmanager
    def paused(self):
        """The benchmark's own bookkeeping takes no simulated time."""
        self._catch_up()
        try:
            yield
        finally:
            self._real = time.monotonic()


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def setup(args, work: Path):
    """(pipeline, config, source arguments common to both phases) in the folder `work`."""
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    from pipelines.zap_runs.common.sync_config import sync_config
    from pipelines.zap_runs.warehouse.pipeline import make_pipeline

    logging.basicConfig(level=logging.WARNING)
    os.chdir(work)
    config = sync_config()
    config.pipelines_dir = str(work / "pipelines")
    pipeline = make_pipeline("duckdb", "zapier", pipeline_name="freshness", config=config,
                             credentials=str(work / "freshness.duckdb"))
    common = {"max_staleness_hours": args.max_staleness, "backoff_base": 0.01,
              "request_timeout": 30.0}
    return pipeline, config, common


def catch_up(args, work: Path) -> dict:
    """Caught up at the start, in a process of its own (its memory is not the loop's): every
    account read once, unpaced, the clock standing still."""
    from pipelines.simulator import SharedClock
    from pipelines.zap_runs.common import clock as sync_clock
    from pipelines.zap_runs.warehouse.pipeline import logged_sync

    pipeline, config, common = setup(args, work)
    with sync_clock.use(SharedClock(work / "clock")):
        sim, base, accounts = start_simulator(work, args, None, "catchup")
        caught = time.monotonic()
        # All of each account's history (a day): its open and failed runs watched, as after
        # a first sync (a catch-up from a `since` would leave the runs before it unwatched, to
        # be found by the error listing alone when they settle).
        # Every page of it: with the default backfill_pages_per_pass the busiest accounts would
        # still be backfilling, a part a round, for hours into the measured run.
        logged_sync(pipeline, config, base_url=base, accounts_file=str(accounts),
                    requests_per_minute=0, all_accounts=True, backfill_pages_per_pass=10**9,
                    **common)
        stop(sim)
    return {"seconds": round(time.monotonic() - caught, 1), "peak_rss_mb": round(peak_mb(), 1)}


def run_one(args, order: str, rate: int) -> dict:
    """One order at one rate, in this process (the catch-up before it in a child process)."""
    from pipelines.simulator import SharedClock
    from pipelines.simulator.accounts import heavy_mix, tier_of
    from pipelines.zap_runs.cli.loop import Stop, run_loop
    from pipelines.zap_runs.common import clock as sync_clock

    work = Path(tempfile.mkdtemp(prefix="freshness-"))
    # A fixed start: the worlds' runs follow the hour of the day, so figures compare run to run.
    start = datetime(2026, 11, 2, 6, tzinfo=UTC)
    clock = SharedClock(work / "clock", start=start)
    tiers = tier_of(heavy_mix(args.accounts, args.seed))
    caught = child(args, "--catch-up-in", str(work))
    pipeline, config, common = setup(args, work)
    running = Running(clock)
    with sync_clock.use(running):
        sim, base, accounts = start_simulator(work, args, rate, "run")
        t0 = clock.now()
        end = t0 + timedelta(hours=args.hours)
        seen: set[tuple[str, str]] = set()  # (account, run) loaded as failed
        latencies: dict[str, list[float]] = defaultdict(list)
        reads: dict[str, list[datetime]] = defaultdict(list)
        loads = [0]
        hours_told = [0]
        purposes: Counter = Counter()
        spent: Counter = Counter()  # requests by tier
        spent_for: dict[str, Counter] = defaultdict(Counter)  # by tier, by purpose
        halt = Stop()

        def after_round(result, seconds: float) -> None:
            with running.paused():
                measure(result, running.now())

        def measure(result, now: datetime) -> None:
            if result is not None:
                loads[0] += 1
                for outcome in result.accounts:
                    if outcome.result == "success":
                        reads[outcome.account].append(outcome.started_at)
                        tier = tiers.get(outcome.account, "rest")
                        spent[tier] += outcome.requests
                        if outcome.progress is not None:
                            for purpose, count in outcome.progress.spend.by_purpose.items():
                                spent_for[tier][purpose] += count
                for purpose, count in result.spend.by_purpose.items():
                    purposes[purpose] += count
                failed = []
                with pipeline.sql_client() as client:
                    for load_id in result.load_info.loads_ids:  # a pending load may come first
                        failed += client.execute_sql(
                            "select account_id, id, end_time from zap_runs where status = 'error' "
                            "and _dlt_load_id = %s", load_id)
                for account, run, ended in failed:
                    if (account, run) in seen or ended is None:
                        continue
                    seen.add((account, run))
                    ended = ended if ended.tzinfo else ended.replace(tzinfo=UTC)
                    if ended >= t0:
                        latencies[tiers.get(account, "rest")].append(
                            (now - ended).total_seconds() / 60)
            hour = int((now - t0).total_seconds() // 3600)
            if hour > hours_told[0]:  # a line an hour, to follow a long run
                hours_told[0] = hour
                every = sorted(v for values in latencies.values() for v in values)
                print(f"{order} at {rate}/min: {hour} h simulated, {loads[0]} loads, failed runs "
                      f"loaded {len(every)}, latency {summary(every)}, peak {peak_mb():.0f} MB",
                      file=sys.stderr, flush=True)
            if now >= end:
                halt.set()

        wall = time.monotonic()
        source = {"base_url": base, "accounts_file": str(accounts), "requests_per_minute": rate,
                  **common}
        if order == "scheduled":
            run_loop(pipeline, config, load_every=args.load_every, models_every=10**9,
                     stop=halt, after_round=after_round, **source)
        else:
            run_loop(pipeline, config, load_every=args.load_every, models_every=10**9,
                     stop=halt, after_round=after_round, all_accounts=True, **source)
        wall = time.monotonic() - wall
        loop_peak = peak_mb()  # this process ran only the loop: its peak is the loop's
        stop(sim)
        names = [json.loads(line)["name"] for line in accounts.read_text().splitlines()]
        state = pipeline.state
        folder = folder_mb(Path(pipeline.working_dir))
    os.chdir(ROOT)
    shutil.rmtree(work, ignore_errors=True)  # its DuckDB file and pipeline folder
    # Longest unread: between reads, and from the last read (or the start) to the end.
    longest = 0.0
    for name in names:
        times = [t0, *sorted(reads.get(name, [])), end]
        gaps = ((b - a).total_seconds() / 3600 for a, b in zip(times, times[1:], strict=False))
        longest = max(longest, *gaps)
    every = sorted(v for values in latencies.values() for v in values)
    in_tier = Counter(tiers.get(name, "rest") for name in names)
    read_in_tier = Counter()
    for name in names:
        read_in_tier[tiers.get(name, "rest")] += len(reads.get(name, []))
    return {
        "order": order, "rate": rate, "accounts": args.accounts, "hours": args.hours,
        "latency": summary(every), "by_tier": {t: summary(sorted(latencies.get(t, []))) for t in TIERS},
        "reads_per_hour_by_tier": {t: round(read_in_tier[t] / in_tier[t] / args.hours, 2)
                                   for t in TIERS if in_tier[t]},
        "requests_per_read_by_tier": {t: round(spent[t] / read_in_tier[t], 2)
                                      for t in TIERS if read_in_tier[t]},
        "requests_per_read_by_tier_and_purpose": {
            t: {p: round(n / read_in_tier[t], 2) for p, n in spent_for[t].items() if n}
            for t in TIERS if read_in_tier[t]},
        "longest_unread_h": round(longest, 2), "loads": loads[0], "requests": dict(purposes),
        "peak_rss_mb": round(loop_peak, 1), "catchup_peak_rss_mb": caught["peak_rss_mb"],
        "state_kb": round(len(json.dumps(state, default=str)) / 1024, 1),
        "folder_mb": round(folder, 2),
        "wall_s": round(wall, 1), "catchup_s": caught["seconds"],
    }


def child(args, *extra: str) -> dict:
    """Run this script with `extra` in a process of its own; the dict it prints."""
    done = subprocess.run([sys.executable, __file__, *sys.argv[1:], *extra],
                          stdout=subprocess.PIPE, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith(RESULT)), None)
    if line is None:
        print(done.stdout[-2000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(extra)} failed")
    return json.loads(line[len(RESULT):])


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}

    def at(share: float) -> float:
        return round(values[min(len(values) - 1, int(share * len(values)))], 1)

    return {"n": len(values), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99),
            "max": round(values[-1], 1), "mean": round(statistics.fmean(values), 1)}


def table(results: list[dict]) -> str:
    lines = [f"{'order':10} {'rate':>4} {'failed':>6} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>7} "
             f"{'unread':>7} {'loads':>5} {'reqs':>7} {'RSS MB':>7} {'state KB':>8} "
             f"{'folder MB':>9}  by tier p90 (top/middle/rest)"]
    for r in results:
        lat, tiers = r["latency"], r["by_tier"]
        by_tier = "/".join(str(tiers[t].get("p90", "-")) for t in TIERS)
        lines.append(
            f"{r['order']:10} {r['rate']:>4} {lat.get('n', 0):>6} {lat.get('p50', '-'):>6} "
            f"{lat.get('p90', '-'):>6} {lat.get('p99', '-'):>6} {lat.get('max', '-'):>7} "
            f"{r['longest_unread_h']:>6}h {r['loads']:>5} {sum(r['requests'].values()):>7,} "
            f"{r['peak_rss_mb']:>7} {r['state_kb']:>8} {r['folder_mb']:>9}  {by_tier}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=positive(int), default=10_000)
    parser.add_argument("--hours", type=positive(float), default=12.0)
    parser.add_argument("--rates", default="150,60", help="requests a minute, e.g. 150,60")
    parser.add_argument("--orders", default="scheduled,pass")
    parser.add_argument("--load-every", type=positive(float), default=60.0, metavar="SECONDS")
    parser.add_argument("--max-staleness", type=positive(float), default=6.0, metavar="HOURS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("ORDER", "RATE"), help=argparse.SUPPRESS)
    parser.add_argument("--catch-up-in", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.catch_up_in:
        print(RESULT + json.dumps(catch_up(args, Path(args.catch_up_in))), flush=True)
        return
    if args.one:
        result = run_one(args, args.one[0], int(args.one[1]))
        print(RESULT + json.dumps(result), flush=True)
        return
    results = []
    for rate in [int(r) for r in args.rates.split(",")]:
        for order in args.orders.split(","):
            began = time.monotonic()
            result = child(args, "--one", order, str(rate))
            results.append(result)
            print(f"{order} at {rate}/min: {time.monotonic() - began:.0f} s real; "
                  f"{json.dumps(result)}", flush=True)
    print()
    print(f"{args.accounts:,} accounts, {args.hours:g} simulated hours, max_staleness "
          f"{args.max_staleness:g} h, a load every {args.load_every:g} s; latency in minutes "
          "from a failed run's end to its load")
    print(table(results))


if __name__ == "__main__":
    main()
