"""Where a project's dlt working folders and default DuckDB file live: in the project folder the
sync runs in, never in a folder shared with another project (dlt keeps one per pipeline name per
user, and restores from it where the pipeline first ran).

- The project folder is dlt's run folder: the working directory, or `DLT_PROJECT_DIR` (dlt reads
  `.dlt/` from there too).
- The pipelines folder is `pipelines_dir` under [sources.zap_runs] when set; else, when
  `DLT_DATA_DIR` is set (dlt's data folder), `$DLT_DATA_DIR/pipelines/<project>-<hash>`, one per
  project under it; else `<project>/.dlt/pipelines` (git-ignored).
- The default DuckDB file is `<pipeline name>.duckdb` in the folder the sync runs in (dlt's local
  folder: the working directory, or DLT_LOCAL_DIR), an absolute path: dlt would put it where the
  pipeline first ran.
- A working folder that an earlier version left in dlt's shared folder is moved into the
  project's on the first run after the upgrade, when it belongs to this project (dlt records the
  local folder a pipeline first ran in); else it is left to its project and that is said once.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import dlt

from ..common.errors import ConfigError
from .locks import SyncLock

log = logging.getLogger(__name__)

DLT_DATA_DIR = "DLT_DATA_DIR"  # dlt's data folder, where it is set (dlt's documented variable)


def project_dir() -> Path:
    """The project folder: dlt's run folder (the working directory, or DLT_PROJECT_DIR)."""
    return Path(dlt.current.run_context().run_dir).resolve()


def project_key(project: Path) -> str:
    """A name for the project under a shared data folder: its folder's name and a digest of its
    path (two clones named alike stay apart)."""
    digest = hashlib.sha256(str(project).encode()).hexdigest()[:10]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in project.name) or "root"
    return f"{name}-{digest}"


def shared_pipelines_dir() -> Path:
    """dlt's own default for every pipeline of the user: <dlt data folder>/pipelines."""
    return Path(dlt.current.run_context().data_dir) / "pipelines"


def pipelines_dir(configured: str | None = None, folder: Path | None = None) -> Path:
    """This project's pipelines folder (`configured`: pipelines_dir under [sources.zap_runs];
    `folder`: the project folder, dlt's run folder unless given)."""
    project = folder.resolve() if folder is not None else project_dir()
    if configured and configured.strip():
        path = Path(configured.strip()).expanduser()
        return path if path.is_absolute() else project / path
    if os.environ.get(DLT_DATA_DIR):
        return shared_pipelines_dir() / project_key(project)
    return project / ".dlt" / "pipelines"


def local_dir() -> Path:
    """The folder dlt puts local files in, DuckDB files among them: the working directory, or
    DLT_LOCAL_DIR. dlt records it as a pipeline's initial_cwd when the pipeline first runs."""
    return Path(dlt.current.run_context().local_dir).resolve()


def writable(folder: Path) -> Path:
    """`folder`, made if missing; ConfigError when this user cannot (a read-only checkout)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the pipelines folder {folder} ({exc.strerror}): set "
                          "pipelines_dir under [sources.zap_runs] (or SOURCES__ZAP_RUNS__"
                          "PIPELINES_DIR) to a folder this user can write.") from None
    return folder


def duckdb_credentials(pipeline_name: str) -> str | None:
    """The DuckDB file of a pipeline: the configured one (destination.duckdb.credentials, as a
    path, a duckdb:/// string or a table with `database`), a relative path taken from the local
    folder as dlt does; else `<local folder>/<pipeline_name>.duckdb`, never where the pipeline
    first ran. None when the configured value is no file (:memory:, MotherDuck) and dlt is to
    resolve it."""
    for scope in (f"{pipeline_name}.destination.duckdb", "destination.duckdb"):
        value = _configured(f"{scope}.credentials")
        if isinstance(value, Mapping):
            value = value.get("database")
        if not isinstance(value, str) or not value.strip():
            value = _configured(f"{scope}.credentials.database")
        if isinstance(value, str) and value.strip():
            return _file_of(value.strip())
    return str(local_dir() / f"{pipeline_name}.duckdb")


def _configured(key: str) -> object:
    value = dlt.secrets.get(key)
    return value if value is not None else dlt.config.get(key)


def _file_of(value: str) -> str | None:
    value = value.removeprefix("duckdb:///")
    if value.startswith((":", "md:", "motherduck:")) or "://" in value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else local_dir() / path)


def adopt_shared_folder(pipeline_name: str, target: Path, wait_seconds: float) -> None:
    """Move the pipeline's working folder from dlt's shared folder into `target` (this project's
    pipelines folder) when an earlier version left it there for this project; say so once.

    Under both folders' sync locks (an older sync may still be running, another command of
    this project may be adopting it too), and never half-done: a rename, or across disks a
    copy renamed into place before the old folder goes."""
    if (target / pipeline_name).exists():
        return
    shared = shared_pipelines_dir()
    old = shared / pipeline_name
    if not old.is_dir() or shared.resolve() == target.resolve():
        return
    owner = _first_run_folder(pipeline_name, shared)
    if owner is None or owner != local_dir():
        where = f"for {owner}, where it first ran" if owner else "(its first folder is unknown)"
        log.warning("left dlt's shared working folder %s %s; this project keeps its own in %s "
                    "(its state is read from its own destination)", old, where,
                    target / pipeline_name)
        return
    writable(target)
    with SyncLock(target / f"{pipeline_name}.lock", wait_seconds), \
            SyncLock(shared / f"{pipeline_name}.lock", wait_seconds):
        if (target / pipeline_name).exists() or not old.is_dir():
            return  # another command of this project adopted it meanwhile
        _move(old, target / pipeline_name)
    log.warning("moved this project's dlt working folder from %s to %s: each project keeps its "
                "own pipelines now (pipelines_dir)", old, target / pipeline_name)


def _move(old: Path, new: Path, rename=os.rename) -> None:
    try:
        rename(old, new)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = new.with_name(f".{new.name}.adopting")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(old, partial, symlinks=True)
        os.replace(partial, new)
        shutil.rmtree(old)


def _first_run_folder(pipeline_name: str, shared: Path) -> Path | None:
    """The folder a pipeline of dlt's shared folder first ran in (dlt keeps it in the local
    state as initial_cwd), or None when that cannot be read."""
    try:
        pipeline = dlt.attach(pipeline_name, pipelines_dir=str(shared))
        return Path(pipeline.get_local_state_val("initial_cwd")).resolve()
    except Exception:  # noqa: BLE001 - a broken or foreign folder: not ours to move
        log.debug("cannot read the first run folder of %s", shared / pipeline_name, exc_info=True)
        return None
