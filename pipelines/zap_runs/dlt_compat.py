"""One fix to dlt 1.31 that loading Arrow tables into a nested table needs.

dlt's extract step sums the written files' metrics per resource, looking each table's
resource up as `table["resource"]` (dlt/extract/extract.py, `Extract._compute_metrics`).
Nested tables have no `resource` key (they belong to their root table's resource), so a
nested table written from Arrow, which dlt's own normalizer never does, raises KeyError
there after every row is already written. The fix counts such a table under its root
table's resource. dlt is pinned in pyproject.toml; tests/test_sync_data.py fails if an
upgrade changes this.
"""

from __future__ import annotations

from collections.abc import Callable

import dlt.extract.extract as dlt_extract

_aggregate = dlt_extract.aggregate_job_metrics


def _aggregate_nested_under_root(job_metrics: dict, key: Callable[[object], str]) -> dict:
    def key_or_root(job_key: object) -> str:
        try:
            return key(job_key)
        except KeyError:
            if not isinstance(job_key, str):
                raise
            # A nested table, named <root>__<path>, whose root is the resource's table.
            return job_key.split("__", 1)[0]
    return _aggregate(job_metrics, key_or_root)


def install() -> None:
    """Idempotent: installs the fix once per process."""
    if dlt_extract.aggregate_job_metrics is _aggregate:
        dlt_extract.aggregate_job_metrics = _aggregate_nested_under_root
