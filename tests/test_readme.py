"""README and docs/ stay true: every command, flag and config key is documented (each key once), every
link finds its page and heading, and the demo prints what README shows."""

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

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# The pages the README leads to; together with it they document everything.
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "docs").glob("*.md"))}
PAGES = {"README.md": README, **DOCS}
CONFIGURATION = "docs/reference.md"  # the page of the configuration table
SIMULATOR = "docs/development.md"  # the page of the simulator's section (tests/test_simulator_cli.py)
# Source arguments the code sets itself, never read from [sources.zap_runs] in practice.
INTERNAL = {"force_since": "set with since by --since", "full_refresh": "set by --full-refresh",
            "progress": "the sync's progress display",
            "shard": "set by --shard, which also names the shard's own pipeline",
            "on_token_rotated": "a Python callable, passed by an app that embeds the source",
            "all_accounts": "set by --all-accounts",
            "min_read_interval_seconds": "set by --loop to its load_every",
            "stop": "a Python callable, passed by --loop (SIGTERM)",
            "pacer": "a Python object, passed by --loop (one pacer across its rounds)"}


def section(title: str, page: str = "README.md") -> str:
    """A `## title` section of a page, its ### subsections included."""
    return PAGES[page].split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def without_simulator() -> str:
    """README and docs/ but the simulator's own section (its flags are tests/test_simulator_cli.py's)."""
    simulator = section("The Partner API simulator", SIMULATOR)
    text = "\n".join(page.replace(simulator, "") if name == SIMULATOR else page
                     for name, page in PAGES.items())
    return " ".join(text.split())


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def prose(text: str) -> str:
    """A page without its fenced code blocks (where `# a comment` is no heading, `[a](b)` no link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def headings(text: str, levels: str = "1,6") -> list[str]:
    """The titles of a page's headings of these levels."""
    return re.findall(rf"^#{{{levels}}} (.+)$", prose(text), re.M)


def source_keys() -> dict[str, object]:
    """The source's arguments dlt resolves from config (its configspec's fields), and their defaults."""
    defaults = ZapRunsSourceConfiguration()
    return {name: getattr(defaults, name) for name in ZapRunsSourceConfiguration.get_resolvable_fields()}


def code_keys() -> dict[str, object]:
    """Every [sources.zap_runs] key the code accepts, with its default."""
    defaults = SyncConfig()
    return {**source_keys(), **{name: getattr(defaults, name) for name in SyncConfig.get_resolvable_fields()}}


def table_rows(text: str) -> list[tuple[str, list[str]]]:
    """Each `key` of a table row of `text` whose first cell names keys, with the row's cells."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows += [(key, cells) for key in re.findall(r"`([a-z0-9_]+)`", cells[0])]
    return rows


def config_table() -> dict[str, list[str]]:
    """The configuration table (docs/reference.md): each `key` of a row -> the row's cells."""
    return dict(table_rows(section("Configuration", CONFIGURATION)))


def test_every_command_and_long_option_is_in_the_readme_or_docs():
    text = without_simulator()
    actions = build_parser()._actions
    commands = next(a.choices for a in actions if a.dest == "command")
    options = {o for a in actions for o in a.option_strings if o.startswith("--")} - {"--help"}
    missing = [f"python -m pipelines.zap_runs {c}" for c in commands
               if f"python -m pipelines.zap_runs {c}" not in text]
    missing += sorted(o for o in options if not re.search(rf"(?<![\w-]){o}(?![\w-])", text))
    assert not missing, f"neither README.md nor docs/*.md mention {missing}"


def test_internal_source_arguments_exist_and_stay_out_of_the_table():
    parameters = inspect.signature(zap_runs_source).parameters
    assert set(INTERNAL) <= set(parameters), "INTERNAL names an argument the source no longer has"
    assert not set(INTERNAL) & set(config_table())
    # Every other argument is the configspec's, so dlt resolves it from [sources.zap_runs].
    assert set(parameters) - set(INTERNAL) == set(ZapRunsSourceConfiguration.get_resolvable_fields())


def test_every_key_the_code_accepts_is_in_the_configuration_table_with_its_env_var():
    table = config_table()
    missing = sorted(set(code_keys()) - set(table))
    assert not missing, f"{CONFIGURATION}'s configuration table lacks {missing}"
    wrong = sorted(key for key, cells in table.items() if key in code_keys()
                   and f"`SOURCES__ZAP_RUNS__{key.upper()}`" not in cells[2])
    assert not wrong, f"{CONFIGURATION}'s configuration table gives no SOURCES__ZAP_RUNS__<KEY> for {wrong}"


def test_every_key_in_the_configuration_table_is_accepted_by_the_code():
    stale = sorted(set(config_table()) - set(code_keys()))
    assert not stale, f"{CONFIGURATION}'s configuration table documents keys the code does not read: {stale}"


def test_the_configuration_table_states_the_code_defaults():
    table = config_table()
    wrong = []
    for key, default in code_keys().items():
        if isinstance(default, bool) or not isinstance(default, str | int | float):
            continue  # None or dlt.secrets.value: the table says what happens without it
        shown = {f"`{default}`", f"`{default:g}`" if isinstance(default, float) else f"`{default}`"}
        if not any(s in table[key][3] for s in shown):
            wrong.append(f"{key}: code {default!r}, docs {table[key][3]!r}")
    assert not wrong, f"{CONFIGURATION}'s configuration table states other defaults than the code: {wrong}"


def test_every_key_has_one_row_across_readme_and_docs():
    """Documented once: a key's row (one giving its SOURCES__ZAP_RUNS__ variable) is in one table only."""
    rows: dict[str, list[str]] = {}
    for name, text in PAGES.items():
        for key, cells in table_rows(text):
            if key in code_keys() and len(cells) > 2 and "SOURCES__ZAP_RUNS__" in cells[2]:
                rows.setdefault(key, []).append(name)
    twice = {key: names for key, names in rows.items() if len(names) > 1}
    assert not twice, f"configuration keys with more than one row: {twice}"


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
    contents = README.split("**Contents**", 1)[1].split("\n## ", 1)[0]
    linked = re.findall(r"- \[([^\]]+)\]\(#([^)]+)\)", contents)
    assert [title for title, _ in linked] == headings(README, "2,3"), "one entry per section, in order"
    assert all(target == anchor(title) for title, target in linked)


def test_the_contents_link_every_docs_page():
    contents = README.split("**Contents**", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", contents))
    missing = sorted(set(DOCS) - linked)
    assert not missing, f"README's contents link no {missing}"


def relative_links(text: str) -> list[str]:
    """The targets of a page's Markdown links and images that are no URL, outside code blocks."""
    text = re.sub(r"`[^`\n]*`", "", prose(text))
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_every_relative_link_finds_its_file_and_heading():
    broken = []
    for name, text in PAGES.items():
        for target in relative_links(text):
            path, _, fragment = target.partition("#")
            file = (ROOT / name).parent / path if path else ROOT / name
            if not file.resolve().is_file():
                broken.append(f"{name}: {target} (no such file)")
            elif fragment and file.suffix == ".md" and fragment not in {
                    anchor(title) for title in headings(file.read_text(encoding="utf-8"))}:
                broken.append(f"{name}: {target} (no such heading)")
    assert not broken, f"links that lead nowhere: {broken}"


def test_the_link_check_reads_links_and_headings():
    """The check above finds what it must: links of each kind, and no heading in a code block."""
    assert relative_links("[a](docs/x.md#b) ![c](d.png) [e](#f) [g](https://h) `[i](j)`") == \
        ["docs/x.md#b", "d.png", "#f"]
    assert headings("# A\n```bash\n# not a heading\n```\n## B: c, d\n") == ["A", "B: c, d"]
    assert anchor("DuckDB's single-writer lock") == "duckdbs-single-writer-lock"


def test_every_docs_page_the_code_names_exists():
    package = Path(__file__).parents[1] / "pipelines"
    named = {m for p in package.rglob("*.py")
             for m in re.findall(r"docs/[\w-]+\.md", p.read_text(encoding="utf-8"))}
    assert named, "the code's messages name no docs page: is this check still needed?"
    missing = sorted(m for m in named if not (package.parent / m).is_file())
    assert not missing, f"messages and help name docs pages that do not exist: {missing}"


def test_every_import_the_docs_show_works():
    """`from pipelines... import ...` lines in README.md and docs/*.md (embedding examples) name
    modules and names that exist."""
    lines = sorted({m.strip() for text in PAGES.values()
                    for m in re.findall(r"^\s*from pipelines\.[\w.]+ import [\w, ]+$", text, re.M)})
    assert lines, "the docs show no import: is this check still needed?"
    failing = []
    for line in lines:
        try:
            exec(line, {})  # noqa: S102 - the docs' own import lines
        except ImportError as exc:
            failing.append(f"{line}: {exc}")
    assert not failing, f"imports in the docs that fail: {failing}"


def test_the_queries_the_docs_show_run_on_the_demo_warehouse(demo_run):
    """Each statement of the SQL blocks in README.md, docs/reference.md and docs/operations.md
    runs on the demo's DuckDB file (dlt-gaps.md's reproductions need dlt's staging tables)."""
    import duckdb

    done, folder = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    blocks = [block for name in ("README.md", "docs/reference.md", "docs/operations.md")
              for block in re.findall(r"```sql\n(.*?)```", PAGES[name], re.S)]
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()
                  and not all(line.strip().startswith("--") for line in s.strip().splitlines())]
    assert len(statements) >= 5, statements
    with duckdb.connect(str(folder / "zap_runs_demo.duckdb"), read_only=True) as con:
        for statement in statements:
            con.execute(statement).fetchall()
