"""README's demo block from the demo's real output: `python -m tests.readme_demo --write` rewrites it."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"
REGENERATE = ".venv/bin/python -m tests.readme_demo --write"
DEMO = [sys.executable, "-m", "pipelines.zap_runs", "--demo"]
# Settings a developer's shell may carry; no test and no README run sees them.
SETTINGS_ENV = ("SOURCES__", "DESTINATION__", "ZAP_RUNS__", "RUNTIME__", "NORMALIZE__", "LOAD__",
                "EXTRACT__")
# The ```text block after "The demo prints ..." (the intro line ends with a colon).
BLOCK = re.compile(r"(^The demo prints[^\n]*:\n\n```text\n)(.*?)(\n```$)", re.S | re.M)
# What changes from run to run: the demo account is seeded but anchored at the wall clock, so its
# window, counts and rates (and which zaps rank in the top 8) move; the labels and lines do not.
MASKS = [
    (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>"),
    (r"\b\d+\.\d+ s\b", "<seconds> s"),
    (r"^(  (?:runs|steps|open runs|requests) +)[\d,]+", r"\1<count>"),
    (r"fetched: [\d,]+ new", "fetched: <count> new"),
    (r"^(  (?:rate limit|needed) .*)$", lambda m: re.sub(r"\d[\d,.]*", "<n>", m.group(1))),
    (r"^(Last 7 days: )[\d,]+( runs, error rate )(?:[\d.]+%|n/a)( \()[\d,]+( failed of )[\d,]+"
     r"( finished\); )\d+( zaps failing now)$", r"\1<count>\2<rate>\3<count>\4<count>\5<count>\6"),
    (r"^  +\d+  +(?:\d+%|n/a)  +(?:\d+%|n/a)  .+ \(\d+\)(?:  SPIKE)?$",
     "  <streak>  <24h>  <7d>  <zap title> (<zap id>)"),
    (r"^\d+ open incidents?", "<count> open incidents"),
    (r"^  .+ \(\d+\): failing since \d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+ failed runs"
     r"(?:, first at step \d+)?$", "  <zap title> (<zap id>): failing since <time>, <count> failed runs"),
    # One line per incident that opened or resolved in the last day: how many follows the clock.
    (r"^  alert      Zap .*$", "  alert      <an incident that opened or resolved, in one line>"),
    (r"^(  alert      <an incident[^\n]*\n)(?:  alert      <an incident[^\n]*\n)+", r"\1"),
    (r"^(  alerts     )\d+( sent \(demo )\d+(\); )\d+( older than)", r"\1<count>\2<count>\3<count>\4"),
]


def demo_env(dlt_data_dir: Path) -> dict[str, str]:
    """This process's environment without zap-runs/dlt settings, dlt's data in `dlt_data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_ENV)}
    return {**env, "DLT_DATA_DIR": str(dlt_data_dir), "RUNTIME__DLTHUB_TELEMETRY": "false"}


def run_demo(folder: Path) -> subprocess.CompletedProcess:
    """`python -m pipelines.zap_runs --demo` in `folder`, stdout and stderr captured."""
    return subprocess.run(DEMO, cwd=folder, env=demo_env(folder / "dlt-data"), capture_output=True,
                          text=True, timeout=300)


def as_shown(stdout: str, folder: Path) -> str:
    """The demo's stdout as README shows it: the folder it ran in is /path/to."""
    return stdout.replace(f"{folder.resolve()}{os.sep}", "/path/to/").rstrip("\n")


def readme_block(readme: str) -> str:
    """The demo block README holds now."""
    found = BLOCK.search(readme)
    if found is None:
        raise SystemExit("README.md has no ```text block after a line starting 'The demo prints'")
    return found.group(2)


def masked(text: str) -> list[str]:
    """Lines of demo output with what varies run to run masked, labels and layout kept."""
    for pattern, replacement in MASKS:
        text = re.sub(pattern, replacement, text, flags=re.M)
    return text.splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.readme_demo", description=__doc__)
    parser.add_argument("--write", action="store_true",
                        help="rewrite README.md's demo block (default: print the new block)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        done = run_demo(folder)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            print(f"error: the demo exited {done.returncode}; README.md left as it was", file=sys.stderr)
            return 1
        block = as_shown(done.stdout, folder)
    if not args.write:
        print(block)
        return 0
    readme = README.read_text(encoding="utf-8")
    readme_block(readme)
    updated = BLOCK.sub(lambda m: m.group(1) + block + m.group(3), readme, count=1)
    README.write_text(updated, encoding="utf-8")
    print("README.md: demo block " + ("regenerated" if updated != readme else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
