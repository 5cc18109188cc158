"""Benchmark: the zap-runs sync over many simulated accounts in one pass, backfill then incremental.

The simulator serves --accounts worlds (the seeded mix: mostly quiet accounts, some of 800 runs a
day, about 1 in 100 busy; a week of history each) from another process, unpaced, so the memory
measured here is the sync's own. The sync runs in this process into a fresh DuckDB file in a
temporary folder, every account from the simulator's --accounts-file, unpaced
(requests_per_minute 0): the minutes a pass would need at Zapier's 60 requests a minute (per IP)
and 150 (per partner) are its requests / 60 and / 150.

First backfill passes until no account is left half read (`backfill_until` in its state) or
unread (deferred: a pass's backfills share backfill_pages_per_pass), then a real wait (--gap: the
simulator's worlds and the sync both run on the real clock, and the simulator's command line
cannot move it), then one incremental pass. Per pass it prints the accounts synced, failed,
skipped and deferred, runs fetched, requests by purpose and B (pipelines/zap_runs/reading/spend.py), the
wall time here, the minutes at 60 and 150 a minute, the load packages the pass created, and the
peak RSS of this process: during the pass and each of its stages (VmHWM, reset at its start) and
so far (ru_maxrss). After the incremental pass: requests per account (min/median/max, by kind of
account), what a partner pays per account. Then one more incremental pass in a fresh process, as
a scheduled sync runs: its peak holds none of what the backfill passes left in this one.
The work folder is removed at the end unless --keep.

--accounts-list 250,1000 runs each number of accounts in its own process (a peak only grows
within a process) and prints the peaks side by side, with the growth per 1,000 accounts.
Usage:
  python benchmarks/accounts_pass.py --accounts 50                 # a quick check, under a minute
  python benchmarks/accounts_pass.py                               # 1,000 accounts
  python benchmarks/accounts_pass.py --accounts-list 250,1000      # memory against accounts
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_args import positive  # benchmarks/ is on the path: they run as scripts

ZAPIER_RATE, PARTNER_RATE = 60, 150  # requests a minute: per IP, per partner
# Settings environment variables a developer may have set; the benchmark runs without them.
SETTINGS_ENV = ("SOURCES__", "DESTINATION__", "ZAP_RUNS__", "RUNTIME__", "NORMALIZE__", "LOAD__",
                "EXTRACT__", "DATA_WRITER__")
MAX_BACKFILL_PASSES = 50  # a backfill that needs more is a finding, not a reason to run all day
QUICK_ACCOUNTS, QUICK_GAP = 200, 10.0  # below this many accounts the default gap is short
GAP = 60.0
# The line a run prints last, for --accounts-list to read back: its peaks in KB, as JSON.
MEMORY_LINE = "peak RSS KB: "
FRESH_LINE = "fresh pass peak RSS KB: "
STAGES = ("pass", "fetching", "fetching rise", "loading")


def numbers(text: str) -> list[int]:
    """--accounts-list: two or more numbers of accounts, e.g. 250,1000."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 250,1000, not {text!r}") from None
    if len(set(values)) < 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected two or more different numbers above 0, not {text!r}")
    return sorted(set(values))


# --- memory ----------------------------------------------------------------------------------
def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM: Linux's clear_refs 5), to measure one pass's own
    peak; False where the kernel does not let it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:,.0f} MB"


# --- the simulator ---------------------------------------------------------------------------
def start_simulator(accounts: int, seed: int, accounts_file: str,
                    work: str) -> tuple[subprocess.Popen, str, str]:
    """The simulator in its own process, unpaced; returns it, its URL and its first line."""
    log = Path(work) / "simulator.out"  # a file, not a pipe nobody reads once it has started
    cmd = [sys.executable, "-m", "pipelines.simulator", "--port", "0", "--rate-limit", "0",
           "--accounts", str(accounts), "--accounts-file", accounts_file, "--seed", str(seed)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        banner = log.read_text().splitlines()
        if banner and " on http" in banner[0]:
            return proc, re.search(r" on (http://\S+)", banner[0]).group(1), banner[0]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"the simulator did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- one pass --------------------------------------------------------------------------------
def loaded_packages(pipeline) -> int:
    folder = Path(pipeline.working_dir) / "load" / "loaded"
    return sum(1 for p in folder.iterdir() if p.is_dir()) if folder.exists() else 0


def backfilling(pipeline, names) -> list[str]:
    """The accounts whose state (zap_runs_account_state) says their backfill is not read to the
    end yet."""
    from pipelines.zap_runs.accounts.state import read_states

    states = read_states(pipeline, names)
    return sorted(name for name, state in states.items() if state.get("backfill_until"))


class ProcessPeak:
    """The peak RSS of this process so far (KB): ru_maxrss, kept across reset_peak (which
    resets it too: Linux reads it from the same high-water mark)."""

    def __init__(self) -> None:
        self.kb = 0

    def __call__(self) -> int:
        self.kb = max(self.kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return self.kb


process_peak = ProcessPeak()


class StagePeaks:
    """The peak RSS (KB) of each stage of a sync, as its on_stage callback: "setup" (state,
    destination), "fetching" (every account read and extracted: what grows with accounts, if
    anything does) and "loading" (normalize and load: what grows with the rows); and how far
    each rose above the RSS it started at (what a pass holds from before is not its own)."""

    def __init__(self) -> None:
        self.kb: dict[str, int | None] = {}
        self.rise: dict[str, int | None] = {}
        self.stage = "setup"
        process_peak()
        self.measured = reset_peak()
        self.start = status_kb("VmRSS")

    def __call__(self, stage: str) -> None:
        self._close()
        self.stage = stage

    def _close(self) -> None:
        process_peak()
        peak = status_kb("VmHWM") if self.measured else None
        self.kb[self.stage] = peak
        self.rise[self.stage] = None if peak is None else peak - self.start
        reset_peak()
        self.start = status_kb("VmRSS")

    def done(self) -> None:
        self._close()
        known = [kb for kb in self.kb.values() if kb is not None]
        self.kb["pass"] = max(known) if known else None

    def text(self, stage: str) -> str:
        rise = self.rise.get(stage)
        return f"{mb(self.kb.get(stage))}" + ("" if rise is None else f" (+{rise / 1024:,.0f})")


def run_pass(pipeline, label: str, source: dict) -> tuple:
    """One pass; prints its figures and returns (result, peak RSS in KB by stage and "pass",
    its wall time in seconds)."""
    from pipelines.zap_runs.reading.spend import IN_BUDGET, PURPOSES
    from pipelines.zap_runs.warehouse.pipeline import logged_sync

    packages = loaded_packages(pipeline)
    peaks = StagePeaks()
    started = time.perf_counter()
    result = logged_sync(pipeline, on_stage=peaks, **source)
    wall = time.perf_counter() - started
    peaks.done()
    process = process_peak()
    outcomes = result.accounts
    results = collections.Counter(a.result for a in outcomes)
    by_purpose = dict.fromkeys(PURPOSES, 0)
    budget = 0
    for a in outcomes:
        if a.progress is not None:
            for purpose, spent in a.progress.spend.by_purpose.items():
                by_purpose[purpose] += spent
            budget += a.progress.spend.budget.total
    in_budget = sum(by_purpose[p] for p in IN_BUDGET)
    per_account = sum(a.requests for a in outcomes)
    retries = sum(a.retries for a in outcomes)
    fetched = sum(a.fetched for a in outcomes)
    requests = result.requests
    print(f"{label}: {len(outcomes):,} accounts: {results['success']:,} synced, "
          f"{results['failed']:,} failed, {results['skipped']:,} skipped, {results['deferred']:,} "
          f"deferred to the next pass; {fetched:,} runs fetched"
          + ("" if fetched == result.runs_fetched else f" ({result.runs_fetched:,} in the pass's total)"))
    for a in [a for a in outcomes if a.result in ("failed", "skipped")][:5]:
        print(f"  {a.result} {a.account}: {a.error}")
    inside = " + ".join(f"{p} {by_purpose[p]:,}" for p in IN_BUDGET)
    apart = ", ".join(f"{p} {by_purpose[p]:,}" for p in PURPOSES if p not in IN_BUDGET)
    ratio = f"{in_budget / budget:.2f}" if budget else "n/a"
    print(f"  requests {requests:,} (the accounts' own: {per_account:,}; {retries:,} retries, "
          f"{result.rate_limited:,} answered 429): {inside} = {in_budget:,} in B; apart: {apart}; "
          f"B {budget:,}, spent/B {ratio}")
    print(f"  wall {wall:.1f} s here ({result.fetching:.1f} s fetching, unpaced); would need "
          f"{requests / ZAPIER_RATE:,.1f} min at {ZAPIER_RATE}/min, {requests / PARTNER_RATE:,.1f} min "
          f"at {PARTNER_RATE}/min (requests/{ZAPIER_RATE}, requests/{PARTNER_RATE})")
    print(f"  load packages {loaded_packages(pipeline) - packages}; peak RSS in the pass "
          f"{mb(peaks.kb['pass'])} (VmHWM; setup {peaks.text('setup')}, fetching "
          f"{peaks.text('fetching')}, normalize+load {peaks.text('loading')}: each stage's peak "
          f"and its rise over the RSS it started at), the process so far {mb(process)} "
          f"(ru_maxrss); RSS at the end {mb(status_kb('VmRSS'))}")
    return result, {**peaks.kb, **{f"{k} rise": v for k, v in peaks.rise.items()}}, wall


def per_account(result, kinds: dict[str, str]) -> None:
    """Requests each account cost in the pass: min/median/max, overall and by kind."""
    spent = {a.account: a.requests for a in result.accounts if a.result == "success"}
    if not spent:
        return
    def line(values: list[int]) -> str:
        return (f"min {min(values)}, median {statistics.median(values):g}, max {max(values)}, "
                f"mean {statistics.fmean(values):.2f}")
    print(f"  requests per account ({len(spent):,} synced): {line(list(spent.values()))}")
    for kind in ("quiet", "default", "busy"):
        values = [n for name, n in spent.items() if kinds.get(name) == kind]
        if values:
            print(f"    {kind:8s} {len(values):5,} accounts: {line(values)}")
    counts = collections.Counter(spent.values())
    print("    accounts by requests: " + ", ".join(f"{n}: {counts[n]:,}" for n in sorted(counts)))


def isolate(work: str) -> None:
    """Run the sync with its defaults only, its dlt folders and token stores in `work`."""
    for name in list(os.environ):
        if name.startswith(SETTINGS_ENV):
            del os.environ[name]
    os.environ["DLT_DATA_DIR"] = os.path.join(work, "dlt-data")
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.chdir(work)  # no .dlt/config.toml of the checkout


def open_pipeline(work: str):
    from pipelines.zap_runs.warehouse.pipeline import make_pipeline

    return make_pipeline("duckdb", "zapier", pipeline_name="bench_accounts",
                         pipelines_dir=os.path.join(work, "dlt"),
                         credentials=os.path.join(work, "zap_runs.duckdb"))


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(args: argparse.Namespace) -> None:
    """Backfill passes, the gap, one incremental pass here and one in a fresh process, for
    --accounts accounts."""
    work = tempfile.mkdtemp(prefix="zap-runs-accounts-")
    accounts_file = os.path.join(work, "accounts.jsonl")
    gap = args.gap if args.gap is not None else (QUICK_GAP if args.accounts < QUICK_ACCOUNTS else GAP)
    started = time.perf_counter()
    sim, base_url, banner = start_simulator(args.accounts, args.seed, accounts_file, work)
    isolate(work)

    from pipelines.simulator.accounts import account_mix, kind_of

    kinds = {name: kind_of(config) for name, config in account_mix(args.accounts, args.seed)}
    print(banner)
    print(f"work folder {work}; load average {load_average()} on {os.cpu_count()} cores; "
          f"backfill_pages_per_pass {args.pages}; gap {gap:g} s")
    source = {"base_url": base_url, "token_url": f"{base_url}/oauth/token/",
              "accounts_file": accounts_file, "requests_per_minute": 0,
              "backfill_pages_per_pass": args.pages}
    try:
        pipeline = open_pipeline(work)
        backfill: dict[str, int | None] = {}
        requests = runs = wall = 0
        for number in range(1, MAX_BACKFILL_PASSES + 1):
            result, kb, seconds = run_pass(pipeline, f"backfill pass {number}", source)
            requests, runs, wall = requests + result.requests, runs + result.runs_fetched, wall + seconds
            for stage in STAGES:  # the most any backfill pass took
                known = [v for v in (backfill.get(stage), kb.get(stage)) if v is not None]
                backfill[stage] = max(known) if known else None
            # Half read, or not read at all yet: the pass's backfill pages were spent first.
            left = backfilling(pipeline, kinds)
            deferred = [a.account for a in result.accounts if a.result == "deferred"]
            if not left and not deferred:
                break
            print(f"  {len(left):,} accounts still backfilling ({', '.join(left[:3])}"
                  f"{', ...' if len(left) > 3 else ''}), {len(deferred):,} not started")
        else:
            print(f"backfill NOT done after {MAX_BACKFILL_PASSES} passes")
        print(f"backfill: {number} pass{'es' if number > 1 else ''}, {runs:,} runs fetched, "
              f"{requests:,} requests in {wall:.1f} s here; would need "
              f"{requests / ZAPIER_RATE:,.1f} min at {ZAPIER_RATE}/min, "
              f"{requests / PARTNER_RATE:,.1f} min at {PARTNER_RATE}/min")
        print(f"gap: {gap:g} s of real time (the simulator's command line cannot move its clock)")
        time.sleep(gap)
        result, incremental, _ = run_pass(pipeline, "incremental pass", source)
        per_account(result, kinds)
        # What a scheduled sync costs: one process per pass, none of the backfill's memory.
        with open(os.path.join(work, "source.json"), "w") as out:
            json.dump(source, out)
        child = subprocess.run([sys.executable, __file__, "--fresh-pass", work], text=True,
                               stdout=subprocess.PIPE)
        fresh = None
        for line in child.stdout.splitlines():
            if line.startswith(FRESH_LINE):
                fresh = json.loads(line[len(FRESH_LINE):])
            else:
                print(line)
        if child.returncode != 0 or fresh is None:
            sys.exit(f"the pass in a fresh process failed (exit {child.returncode})")
    finally:
        stop(sim)
    print(f"elapsed {time.perf_counter() - started:.1f} s; load average {load_average()}")
    print(MEMORY_LINE + json.dumps({"accounts": args.accounts, "process": process_peak(),
                                    "backfill": {k: backfill.get(k) for k in STAGES},
                                    "incremental": {k: incremental.get(k) for k in STAGES},
                                    "fresh": fresh}))
    if not args.keep:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(work, ignore_errors=True)


def fresh_pass(work: str) -> None:
    """One incremental pass in this new process (--fresh-pass): its peak is the whole process's."""
    isolate(work)
    with open(os.path.join(work, "source.json")) as saved:
        source = json.load(saved)
    _, kb, _ = run_pass(open_pipeline(work), "incremental pass in a fresh process (as a "
                        "scheduled sync runs)", source)
    process = process_peak()
    print(f"  peak RSS of that whole process {mb(process)}")
    print(FRESH_LINE + json.dumps({**{k: kb.get(k) for k in STAGES}, "process": process}))


def compare(args: argparse.Namespace) -> None:
    """Each number of accounts in its own process; their peaks side by side."""
    peaks: dict[int, dict] = {}
    for n in args.accounts_list:
        cmd = [sys.executable, __file__, "--accounts", str(n), "--pages", str(args.pages),
               "--seed", str(args.seed)] + ([] if args.gap is None else ["--gap", str(args.gap)]) \
            + (["--keep"] if args.keep else [])
        print(f"== {n:,} accounts: {' '.join(cmd[1:])}", flush=True)
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as child:
            for line in child.stdout:
                print(line, end="", flush=True)
                if line.startswith(MEMORY_LINE):
                    peaks[n] = json.loads(line[len(MEMORY_LINE):])
        if child.returncode != 0 or n not in peaks:
            sys.exit(f"the run for {n} accounts failed (exit {child.returncode})")
    rows = [("process", None)] + [(f"{p} {s}", (p, s)) for p in ("backfill", "incremental")
                                  for s in STAGES] + [("fresh process", ("fresh", "process")),
                                                      ("fresh fetching rise", ("fresh", "fetching rise"))]
    def value(figures: dict, key: tuple | None) -> int | None:
        return figures["process"] if key is None else figures[key[0]][key[1]]
    low, high = min(peaks), max(peaks)
    print("\npeak RSS (MB) by number of accounts, each in its own process; backfill: the most of "
          "any backfill pass; pass: the whole pass, fetching: reading every account (and its rise "
          "over the RSS it started at), loading: normalize and load")
    print(f"{'':26}" + "".join(f"{n:>9,}" for n in peaks) + f"   per 1,000 accounts ({low:,} -> {high:,})")
    for label, key in rows:
        figures = [value(peaks[n], key) for n in peaks]
        a, b = value(peaks[low], key), value(peaks[high], key)
        per_1000 = "n/a" if a is None or b is None else f"{(b - a) / 1024 / (high - low) * 1000:+,.1f} MB"
        print(f"{label:26}" + "".join(f"{'n/a' if v is None else f'{v / 1024:,.0f}':>9}" for v in figures)
              + f"   {per_1000}")
    print("(the backfill reads more runs with more accounts, and the incremental pass merges into a "
          "larger table and starts from what the backfill left: only the fetching rise is the "
          "accounts' alone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--accounts", type=positive(int), default=1000,
                        help="accounts the simulator serves and the sync reads (default 1000)")
    parser.add_argument("--accounts-list", type=numbers, metavar="N,N",
                        help="run each number of accounts in its own process and compare peak RSS")
    parser.add_argument("--gap", type=float, metavar="SECONDS",
                        help=f"real seconds between the backfill and the incremental pass (default "
                             f"{GAP:g}; {QUICK_GAP:g} below {QUICK_ACCOUNTS} accounts)")
    parser.add_argument("--pages", type=positive(int), default=600,
                        help="backfill_pages_per_pass (default 600, the sync's)")
    parser.add_argument("--seed", type=int, default=1, help="the simulator's mix seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (DuckDB file, "
                                                            "pipeline folder, accounts file)")
    parser.add_argument("--fresh-pass", metavar="WORK", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh_pass:
        fresh_pass(args.fresh_pass)
        return
    if args.gap is not None and args.gap < 0:
        parser.error("--gap must be 0 or more")
    if args.accounts_list:
        compare(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
