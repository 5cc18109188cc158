"""What a pipeline's destination is, as far as the load and the state rows care: dlt's
filesystem destination, and with which table format (table_format under [sources.zap_runs])."""

from __future__ import annotations

import dlt
from dlt.common.destination import Destination

from .sync_config import SyncConfig, sync_config

FILESYSTEM_DEFAULT_FORMAT = "delta"
# Values of table_format that mean "no table format": plain Parquet/JSONL files.
PLAIN_FILES = {"", "none", "files", "parquet", "jsonl", "csv"}


def table_format(destination: str | Destination, configured: str | None) -> str | None:
    """The table format to write: `configured` (table_format under [sources.zap_runs]), else
    "delta" on the filesystem destination and none elsewhere."""
    if configured is not None:
        value = str(configured).strip().lower()
        return None if value in PLAIN_FILES else value
    dest = Destination.from_reference(destination) if isinstance(destination, str) else destination
    return FILESYSTEM_DEFAULT_FORMAT if is_filesystem(dest) else None


def is_delta_lake(pipeline: dlt.Pipeline, config: SyncConfig | None = None) -> bool:
    """Whether `pipeline` writes Delta tables to the filesystem destination; `config` defaults
    to the one resolved from [sources.zap_runs]."""
    if not is_filesystem(pipeline.destination):
        return False
    return configured_format(pipeline, config) == "delta"


def configured_format(pipeline: dlt.Pipeline, config: SyncConfig | None = None) -> str | None:
    """`table_format` for `pipeline`'s destination, `config` resolved unless given."""
    config = config if config is not None else sync_config()
    return table_format(pipeline.destination, config.table_format)


def destination_kind(dest: Destination) -> str:
    """Which of dlt's destinations `dest` is ("duckdb", "filesystem", ...), under any name the
    user gave it."""
    return dest.destination_type.rsplit(".", 1)[-1]


def is_filesystem(dest: Destination) -> bool:
    """Whether `dest` is dlt's filesystem destination, under any name the user gave it."""
    return destination_kind(dest) == "filesystem"
