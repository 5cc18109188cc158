"""The package's folders are layers, and imports go one way: down (docs/development.md).

cli -> output -> warehouse -> source -> accounts -> reading -> api / alerts -> common. Every import
inside pipelines/zap_runs (also one inside a function) is checked, and no module imports
another that imports it back, through any chain."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "pipelines" / "zap_runs"
# Lower first; a name in the same layer may import the others of its layer.
LAYERS = [{"common"}, {"api", "alerts"}, {"reading"}, {"accounts"}, {"source", "source_config"},
          {"warehouse"}, {"output"}, {"cli"}, {"__main__"}]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports(path: Path) -> set[tuple[str, ...]]:
    """The package modules `path` imports (relative imports resolved; `from . import x` as x)."""
    here = module_of(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
            elif (node.module or "").startswith("pipelines.zap_runs"):
                base, node.module = (), node.module.removeprefix("pipelines.zap_runs").lstrip(".")
            else:
                continue
            target = base + tuple(filter(None, (node.module or "").split(".")))
            for alias in node.names:
                sub = target + (alias.name,)
                is_module = (PACKAGE.joinpath(*sub).with_suffix(".py").exists()
                             or (PACKAGE.joinpath(*sub) / "__init__.py").exists())
                found.add(sub if is_module else target)
    return {t for t in found if t}


def graph() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    return {module_of(p): imports(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
            or p.parent != PACKAGE}


def test_every_module_is_in_a_layer():
    assert {m[0] for m in graph()} <= set(RANK), "a new folder: give it a place in LAYERS"


def test_imports_never_climb_to_a_higher_layer():
    climbs = sorted(f"{'.'.join(m)} -> {'.'.join(t)}" for m, targets in graph().items()
                    for t in targets if RANK[t[0]] > RANK[m[0]])
    assert not climbs, f"imports from a lower layer to a higher one: {climbs}"


def test_no_import_cycle():
    edges = graph()
    cycles = []

    def visit(node, path):
        for nxt in edges.get(node, ()):
            if nxt in path:
                cycles.append(" -> ".join(".".join(m) for m in path[path.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set = set()
    for start in list(edges):
        if start not in done:
            visit(start, [start])
    assert not cycles, f"import cycles: {cycles[:5]}"
