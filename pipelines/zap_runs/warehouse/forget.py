"""Forget one account: its rows in every table, its state, its stored token, and the copies
dlt keeps of what it loaded, for a user who disconnects or asks to be forgotten.

What holds an account's data, and how each is cleared:
- zap_runs, zap_runs__steps, zap_runs_account_state (its cursor, watched runs and the rest of
  its state), zap_runs_sync_log and their copies in the staging dataset (the last merge's
  rows): deleted by account_id, in one transaction;
- the pipeline state, where an older version kept the account's state: removed by a load of
  the zap_runs resource that only edits its state, the dlt way; older state versions in
  _dlt_pipeline_state still hold it, so only the newest version of this pipeline is kept;
- the rotated refresh token (.dlt/zapier_tokens/<name>.json): deleted;
- load packages dlt kept after loading (pipelines_dir/<pipeline>/load/loaded): deleted;
- the SQL models: rebuilt from what is left (the caller does it).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field

import dlt

from ..accounts.state import TABLE as ACCOUNT_STATE
from ..accounts.state import pipelines_of
from ..alerts.delivery import TABLE as ALERTS
from ..api.oauth import account_store
from ..common.errors import ConfigError
from ..common.settings import PIPELINE_NAME
from ..common.sqltables import exists
from .recovery import abort_pending
from .synclog import TABLE as SYNC_LOG

log = logging.getLogger(__name__)

DATA_TABLES = ("zap_runs__steps", "zap_runs", ACCOUNT_STATE, SYNC_LOG, ALERTS)
STAGED_TABLES = DATA_TABLES[:3]  # merged through the staging dataset


@dataclass
class Forgotten:
    """What `forget_account` deleted."""

    rows: dict[str, int] = field(default_factory=dict)
    state: bool = False
    token_store: bool = False
    packages: int = 0
    state_versions: int = 0


def forget_account(pipeline: dlt.Pipeline, account: str, token_store_path: str) -> Forgotten:
    """Delete everything of `account` that `pipeline` and its destination hold."""
    # A package a killed sync left holds the account's runs: aborted (it would never load).
    abort_pending(pipeline)
    pipeline.sync_destination()
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            raise ConfigError(f"dataset {pipeline.dataset_name!r} does not exist: nothing to forget.")
        last, kept = _other_pipelines_with(client, pipeline.pipeline_name, account)
    # Pipelines that did not read it last may hold it in their state (an older version's way).
    others = last or [name for name in kept if account in _accounts_in_state(pipeline, name)]
    if others:
        how = " and ".join("without --shard" if name == PIPELINE_NAME else
                           f"with --shard {name.removeprefix(PIPELINE_NAME + '_shard_').replace('_of_', '/')}"
                           for name in others)
        raise ConfigError(f"account {account!r} also has state in pipeline {', '.join(others)}: run "
                          f"forget {how}, so no copy of its state is left.")
    done = Forgotten()
    done.state = _drop_state(pipeline, account)
    with pipeline.sql_client() as client:
        tables = [q for q in map(client.make_qualified_table_name, DATA_TABLES) if exists(client, q)]
        with client.begin_transaction():
            for qualified in tables:
                done.rows[qualified.rsplit(".", 1)[-1].strip('"`')] = _delete(client, qualified,
                                                                               account)
        with client.with_staging_dataset():
            if client.has_dataset():
                for table in STAGED_TABLES:
                    qualified = client.make_qualified_table_name(table)
                    if exists(client, qualified):
                        _delete(client, qualified, account)
        done.state = done.state or done.rows.get(ACCOUNT_STATE, 0) > 0
        if not done.state and not any(done.rows.values()):
            raise ConfigError(f"account {account!r} has no rows and no state in dataset "
                              f"{pipeline.dataset_name!r} (pipeline {pipeline.pipeline_name}): "
                              "check the name (it is case-sensitive) and --shard.")
        done.state_versions = _drop_old_state_versions(client, pipeline.pipeline_name)
    store = account_store(token_store_path, account)
    for path in (store, store.with_name(store.name + ".tmp")):  # .tmp: a write a crash cut off
        if path.exists():
            path.unlink()
            done.token_store = True
    done.packages = _drop_local_copies(pipeline)
    log.info("forgot account %s: %s", account, done)
    return done


def _delete(client, qualified: str, account: str) -> int:
    """Delete the account's rows from one table that exists; how many there were."""
    with client.execute_query(f"select count(*) from {qualified} where account_id = %s",
                              account) as cursor:
        count = int(cursor.fetchone()[0])
    if count:
        client.execute_sql(f"delete from {qualified} where account_id = %s", account)
    return count


class _Dropper:
    """Stands in for the Sweep in the zap_runs resource: reads nothing, and takes the account
    out of the resource state."""

    def __init__(self, account: str) -> None:
        self.account, self.found = account, False
        self.raise_on_failed = False  # reads no account, so none fails

    def read(self, state: dict):
        self.found = (state.get("accounts") or {}).pop(self.account, None) is not None
        yield from ()


def _drop_state(pipeline: dlt.Pipeline, account: str) -> bool:
    """Remove the account's part of the zap_runs resource state and load the new state (through
    the sync's own resource, so its hints are the sync's)."""
    from ..source import zap_runs

    resource = pipeline.state.get("sources", {}).get("zap_runs", {}).get("resources", {}).get(
        "zap_runs", {})
    if account not in (resource.get("accounts") or {}):
        return False  # nothing to drop: no package to make (it would be left pending)
    dropper = _Dropper(account)

    @dlt.source(name="zap_runs", section="zap_runs", max_table_nesting=1)
    def zap_runs_source():
        return zap_runs(dropper)

    pipeline.extract(zap_runs_source())
    if dropper.found:
        pipeline.normalize()
        pipeline.load()
    return dropper.found


def _other_pipelines_with(client, pipeline_name: str, account: str) -> tuple[list[str], list[str]]:
    """(other zap-runs pipelines (shards) of the dataset that read the account last, as its row
    of zap_runs_account_state says; the other zap-runs pipelines that keep a state there)."""
    table = client.make_qualified_table_name("_dlt_pipeline_state")
    last = [name for name in pipelines_of(client, account) if name != pipeline_name]
    if last or not exists(client, table):
        return last, []
    return last, sorted({name for (name,) in client.execute_sql(
        f"select distinct pipeline_name from {table} where pipeline_name <> %s", pipeline_name)
        if name.startswith("zap_runs")})


def _accounts_in_state(pipeline: dlt.Pipeline, name: str) -> dict:
    """The accounts the pipeline `name`'s state in `pipeline`'s dataset holds, restored the dlt
    way (sync_destination) into a pipeline folder of its own that is thrown away."""
    with tempfile.TemporaryDirectory() as folder:
        other = dlt.pipeline(pipeline_name=name, destination=pipeline.destination,
                             dataset_name=pipeline.dataset_name, pipelines_dir=folder)
        try:
            other.sync_destination()
            resource = other.state.get("sources", {}).get("zap_runs", {}).get("resources", {})
            return resource.get("zap_runs", {}).get("accounts") or {}
        finally:
            other.deactivate()
            pipeline.activate()


def _drop_old_state_versions(client, pipeline_name: str) -> int:
    """Older versions of this pipeline's state (each holds the accounts it had then), and
    versions of loads that never completed (an aborted load's: nothing is pending now). dlt
    restores the newest version whose load completed (_dlt_loads status 0): that one stays."""
    table = client.make_qualified_table_name("_dlt_pipeline_state")
    loads = client.make_qualified_table_name("_dlt_loads")
    newest = (f"(select max(s.version) from {table} s join {loads} l on l.load_id = s._dlt_load_id "
              f"where s.pipeline_name = %s and l.status = 0)")
    where = (f"pipeline_name = %s and (version < {newest} or _dlt_load_id not in "
             f"(select load_id from {loads} where status = 0))")
    try:
        with client.execute_query(f"select count(*) from {table} where {where}",
                                  pipeline_name, pipeline_name) as cursor:
            count = int(cursor.fetchone()[0])
    except Exception:  # noqa: BLE001 - no state table yet
        return 0
    if count:
        client.execute_sql(f"delete from {table} where {where}", pipeline_name, pipeline_name)
    return count


def _drop_local_copies(pipeline: dlt.Pipeline) -> int:
    """dlt's local copies of what it loaded (each loaded package holds the rows it loaded and
    the state before and after; the last run's trace may quote values in error messages),
    dropped with dlt's `Pipeline.drop`: the next sync restores the state and schema from the
    destination (sync_destination), where the account is gone. The packages dropped."""
    count = len(pipeline.list_completed_load_packages())
    pipeline.drop()
    return count
