"""zap-runs: Zapier zap runs (Partner API GET /v2/zap-runs) into any dlt destination.

The dlt source and resource are in source.py. The names below are imported from their modules
when first asked for, so `python -m pipelines.zap_runs --help` answers without loading dlt.
"""

from __future__ import annotations

import importlib

# Public name -> the module that defines it.
_LAZY = {"zap_runs_source": "source", "zap_runs": "source", "Account": "accounts.entries",
         "SomeAccountsFailed": "common.errors", "SyncProgress": "accounts.outcomes"}

__all__ = ["Account", "SomeAccountsFailed", "SyncProgress", "zap_runs_source"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
