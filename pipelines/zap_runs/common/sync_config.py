"""SyncConfig: what the sync reads from [sources.zap_runs] beyond the source's own arguments."""

from __future__ import annotations

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.configuration.specs import BaseConfiguration

from .errors import ConfigError
from .settings import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_INCIDENT_OPEN_AFTER,
    DEFAULT_INCIDENT_RESOLVE_AFTER,
    DEFAULT_LOAD_EVERY_SECONDS,
    DEFAULT_LOCK_WAIT_SECONDS,
    DEFAULT_MODELS_EVERY_MINUTES,
    DEFAULT_OVERLAP_WAIT_SECONDS,
    DEFAULT_STALE_AFTER_HOURS,
    DEFAULT_STORAGE_VERSION,
)


@configspec
class SyncConfig(BaseConfiguration):
    """What the sync reads from [sources.zap_runs] beyond the source's own arguments: keys of
    .dlt/config.toml or SOURCES__ZAP_RUNS__<KEY> environment variables (docs/reference.md, Configuration)."""

    dataset_name: str = DEFAULT_DATASET
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
    overlap_wait_seconds: float = DEFAULT_OVERLAP_WAIT_SECONDS
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    duckdb_storage_version: str = DEFAULT_STORAGE_VERSION
    # None: "delta" on the filesystem destination, no table format elsewhere (warehouse/destinations.py).
    table_format: str | None = None
    stale_after_hours: float = DEFAULT_STALE_AFTER_HOURS
    # None: this project's own (warehouse/project.py): never a folder another project's sync shares.
    pipelines_dir: str | None = None
    # --loop: the longest a round reads before it loads, and how often the models are rebuilt.
    load_every_seconds: float = DEFAULT_LOAD_EVERY_SECONDS
    models_every_minutes: float = DEFAULT_MODELS_EVERY_MINUTES
    # The zap_incidents mart: an incident opens at this many failed runs of a zap in a row and
    # resolves at this many runs in a row that did not fail.
    incident_open_after: int = DEFAULT_INCIDENT_OPEN_AFTER
    incident_resolve_after: int = DEFAULT_INCIDENT_RESOLVE_AFTER


def sync_config() -> SyncConfig:
    """The SyncConfig, resolved the dlt way from [sources.zap_runs]; an empty text is the default."""
    try:
        resolved = resolve_configuration(SyncConfig(), sections=("sources", "zap_runs"))
    except ConfigValueCannotBeCoercedException as exc:
        name, kind = exc.field_name, "a number" if exc.hint in (int, float) else "valid"
        raise ConfigError(f"{name} under [sources.zap_runs] (or SOURCES__ZAP_RUNS__{name.upper()}) "
                          f"is not {kind}: see docs/reference.md, Configuration.") from None
    defaults = SyncConfig()
    for name in ("dataset_name", "duckdb_memory_limit", "duckdb_storage_version"):
        if not str(getattr(resolved, name)).strip():
            setattr(resolved, name, getattr(defaults, name))
    return resolved
