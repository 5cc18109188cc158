"""README stays true: every command, flag and config key is documented, and the demo prints what it shows."""

from __future__ import annotations

import difflib
import inspect
import re
from pathlib import Path

import pytest

from pipelines.zap_runs import zap_runs_source
from pipelines.zap_runs.cli.main import build_parser
from pipelines.zap_runs.common.sync_config import SyncConfig
from pipelines.zap_runs.source_config import ZapRunsSourceConfiguration

from .readme_demo import REGENERATE, as_shown, masked, readme_block

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
# Source arguments the code sets itself, never read from [sources.zap_runs] in practice.
INTERNAL = {"force_since": "set with since by --since", "full_refresh": "set by --full-refresh",
            "progress": "the sync's progress display",
            "shard": "set by --shard, which also names the shard's own pipeline",
            "on_token_rotated": "a Python callable, passed by an app that embeds the source",
            "all_accounts": "set by --all-accounts",
            "min_read_interval_seconds": "set by --loop to its load_every",
            "stop": "a Python callable, passed by --loop (SIGTERM)",
            "pacer": "a Python object, passed by --loop (one pacer across its rounds)"}


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def without_simulator() -> str:
    """README but the simulator's own section (its flags are tests/test_simulator_cli.py's)."""
    simulator = section("The Partner API simulator")
    return " ".join(README.replace(simulator, "").split())


def source_keys() -> dict[str, object]:
    """The source's arguments dlt resolves from config (its configspec's fields), and their defaults."""
    defaults = ZapRunsSourceConfiguration()
    return {name: getattr(defaults, name) for name in ZapRunsSourceConfiguration.get_resolvable_fields()}


def code_keys() -> dict[str, object]:
    """Every [sources.zap_runs] key the code accepts, with its default."""
    defaults = SyncConfig()
    return {**source_keys(), **{name: getattr(defaults, name) for name in SyncConfig.get_resolvable_fields()}}


def config_table() -> dict[str, list[str]]:
    """README's configuration table: each `key` of a row -> the row's cells."""
    rows: dict[str, list[str]] = {}
    for line in section("Configuration").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for key in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            rows[key] = cells
    return rows


def test_every_command_and_long_option_is_in_the_readme():
    text = without_simulator()
    actions = build_parser()._actions
    commands = next(a.choices for a in actions if a.dest == "command")
    options = {o for a in actions for o in a.option_strings if o.startswith("--")} - {"--help"}
    missing = [f"python -m pipelines.zap_runs {c}" for c in commands
               if f"python -m pipelines.zap_runs {c}" not in text]
    missing += sorted(o for o in options if not re.search(rf"(?<![\w-]){o}(?![\w-])", text))
    assert not missing, f"README.md does not mention {missing}"


def test_internal_source_arguments_exist_and_stay_out_of_the_table():
    parameters = inspect.signature(zap_runs_source).parameters
    assert set(INTERNAL) <= set(parameters), "INTERNAL names an argument the source no longer has"
    assert not set(INTERNAL) & set(config_table())
    # Every other argument is the configspec's, so dlt resolves it from [sources.zap_runs].
    assert set(parameters) - set(INTERNAL) == set(ZapRunsSourceConfiguration.get_resolvable_fields())


def test_every_key_the_code_accepts_is_in_the_configuration_table_with_its_env_var():
    table = config_table()
    missing = sorted(set(code_keys()) - set(table))
    assert not missing, f"README's configuration table lacks {missing}"
    wrong = sorted(key for key, cells in table.items() if key in code_keys()
                   and f"`SOURCES__ZAP_RUNS__{key.upper()}`" not in cells[2])
    assert not wrong, f"README's configuration table gives no SOURCES__ZAP_RUNS__<KEY> for {wrong}"


def test_every_key_in_the_configuration_table_is_accepted_by_the_code():
    stale = sorted(set(config_table()) - set(code_keys()))
    assert not stale, f"README's configuration table documents keys the code does not read: {stale}"


def test_the_configuration_table_states_the_code_defaults():
    table = config_table()
    wrong = []
    for key, default in code_keys().items():
        if isinstance(default, bool) or not isinstance(default, str | int | float):
            continue  # None or dlt.secrets.value: the table says what happens without it
        shown = {f"`{default}`", f"`{default:g}`" if isinstance(default, float) else f"`{default}`"}
        if not any(s in table[key][3] for s in shown):
            wrong.append(f"{key}: code {default!r}, README {table[key][3]!r}")
    assert not wrong, f"README's configuration table states other defaults than the code: {wrong}"


def test_the_demo_output_in_the_readme_is_what_the_demo_prints(demo_run):
    done, folder = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    shown, printed = masked(readme_block(README)), masked(as_shown(done.stdout, folder))
    if shown != printed:
        diff = "\n".join(difflib.unified_diff(shown, printed, "README.md", "the demo today", lineterm=""))
        pytest.fail(f"README's demo block is not what `python -m pipelines.zap_runs --demo` prints "
                    f"(varying numbers masked). Regenerate it with `{REGENERATE}`.\n{diff}",
                    pytrace=False)


def test_the_contents_list_every_section_and_each_link_finds_its_heading():
    text = README
    contents = text.split("**Contents**", 1)[1].split("\n## ", 1)[0]
    linked = re.findall(r"- \[([^\]]+)\]\(#([^)]+)\)", contents)
    headings = re.findall(r"^#{2,3} (.+)$", text, re.M)

    def anchor(title: str) -> str:  # GitHub's: lower case, punctuation dropped, spaces to -
        return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
    assert [title for title, _ in linked] == headings, "one entry per section, in order"
    assert all(target == anchor(title) for title, target in linked)
