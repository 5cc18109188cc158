"""The SQL models, seeds and contract ship inside the package and are read from a built wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from pipelines.zap_runs.warehouse.models import LAYERS, load_models, load_seed

ROOT = Path(__file__).resolve().parents[1]
SQL = ROOT / "pipelines" / "zap_runs" / "warehouse" / "sql"
CONTRACT = ROOT / "pipelines" / "simulator" / "contract"


def shipped_files() -> list[str]:
    """Every model, seed and contract file in the checkout, as paths inside the wheel."""
    found = [p for d in (SQL, CONTRACT) for p in d.rglob("*")
             if p.is_file() and p.suffix in {".sql", ".csv", ".json"}]
    return sorted(p.relative_to(ROOT).as_posix() for p in found)


def test_top_level_sql_is_the_packaged_sql() -> None:
    link = ROOT / "sql"
    assert link.is_symlink() and os.readlink(link) == "pipelines/zap_runs/warehouse/sql"
    assert link.resolve() == SQL.resolve()


def test_every_model_and_seed_is_read_through_importlib_resources() -> None:
    on_disk = {(p.parent.name, p.stem) for layer in LAYERS for p in (SQL / layer).glob("*.sql")}
    assert {(m.layer, m.name) for m in load_models()} == on_disk
    assert len(on_disk) >= 8
    seed = load_seed()
    statuses = {status for status, _, _ in seed}
    assert {"success", "error", "error_handled", "halted", "scheduled"} <= statuses
    schema = json.loads((files("pipelines.simulator") / "contract" / "zap_runs.schema.json").read_text())
    assert "page_body" in schema["$defs"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the package's sources (so build/ never lands in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "pipelines", src / "pipelines",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                           str(src)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = (work / "dist").glob("zap_runs-*.whl")
    return built


def test_the_wheel_carries_every_model_seed_and_the_contract(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in shipped_files() if name not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    assert not [name for name in names if name.startswith("sql/")], "a top-level sql/ leaked into the wheel"


PROBE = """
import json
from importlib.resources import files

import pipelines.zap_runs.warehouse.models as m

contract = (files("pipelines.simulator") / "contract" / "zap_runs.schema.json").read_text()
print(json.dumps([m.__file__, len(m.load_models()), len(m.load_seed()), "page_body" in contract]))
"""


def test_models_seeds_and_contract_load_from_the_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S skips site-packages and its .pth files (the editable install's finder among them), so
    # `pipelines` can only come from the unpacked wheel; dlt, sqlglot ... from this venv after it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sysconfig_purelib()])}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-S", "-c", PROBE], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    module_file, count_models, count_seed, contract_ok = json.loads(done.stdout)
    assert Path(module_file).is_relative_to(site)
    assert count_models == len(list(SQL.glob("*/*.sql")))
    assert count_seed == len(load_seed())
    assert contract_ok


def sysconfig_purelib() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})
