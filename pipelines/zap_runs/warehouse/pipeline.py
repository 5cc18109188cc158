"""One sync: build the dlt pipeline, load the source, and measure what changed."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.pipeline.helpers import retry_schema_update
from dlt.sources import DltSource

from ..accounts.outcomes import NOT_LOADED, AccountOutcome, SyncProgress
from ..common import settings
from ..common.clock import utcnow
from ..common.errors import ConfigError, first_line, unwrap
from ..common.sync_config import SyncConfig, sync_config
from ..reading.spend import Spend
from . import project, synclog
from .destinations import drop_stale_steps, lake_count, prepare_source
from .duckdb_file import duckdb_path, prepare_duckdb_file
from .locks import SyncLock, wait_for_duckdb
from .merge_gap import drop_rows_of_retried_copies
from .packages import prune_loaded_packages
from .recovery import abort_pending
from .synclog import Outcome
from .upgrade import add_account_id

log = logging.getLogger(__name__)
# DuckDB's threads while loading. Each thread inserting rows holds its own row groups, so with
# DuckDB's default (one per core) a load that fits the cap on 2 cores runs out of memory on 16.
DUCKDB_LOAD_THREADS = 2


@dataclass
class SyncResult:
    """The facts the summary prints."""

    destination: str
    dataset: str
    window_from: datetime | None
    window_to: datetime | None
    runs_fetched: int
    runs_new: int | None
    runs_updated: int | None
    steps_loaded: int
    open_runs: int
    rechecks: int
    requests: int
    retries: int
    rate_limited: int
    elapsed: float
    spend: Spend = field(default_factory=Spend)
    fetching: float = 0.0
    warnings: list[str] = field(default_factory=list)
    load_info: LoadInfo | None = None
    # One per account in a pass over many (accounts/sweep.py); empty for a single account.
    accounts: list[AccountOutcome] = field(default_factory=list)
    location: str | None = None  # the DuckDB file written, for DuckDB
    due: int | None = None  # accounts due in a scheduled pass (None: every account was read)
    configured: int | None = None  # accounts configured (in this shard), with many

    @property
    def failed_accounts(self) -> list[AccountOutcome]:
        """Accounts that failed or were skipped, and bad entries of the configuration."""
        return [a for a in self.accounts if a.result in NOT_LOADED]


def make_pipeline(destination: str = "duckdb", dataset: str = settings.DEFAULT_DATASET,
                  pipeline_name: str = settings.PIPELINE_NAME, pipelines_dir: str | None = None,
                  credentials: object = None, config: SyncConfig | None = None,
                  own_staging: bool = False) -> dlt.Pipeline:
    """The dlt pipeline; destination credentials come the dlt way (config, env) unless given,
    `config` is resolved from [sources.zap_runs] unless given. Its working folder is in
    `pipelines_dir`, else this project's (project.py), and a DuckDB file without configured
    credentials is `<pipeline_name>.duckdb` in the folder it runs in. `own_staging`: a shard, one of
    several pipelines loading into the dataset at once, merges through a staging dataset of its
    own (<dataset>_<pipeline>_staging): dlt empties the staging tables at each load, and a
    shared one lost or doubled the other shard's rows."""
    config = config if config is not None else sync_config()
    options: dict[str, object] = {}
    if own_staging:
        refuse_shards_into(destination)
        key = f"{pipeline_name}.destination.{destination}.staging_dataset_name_layout"
        if dlt.config.get(key) is None:
            options["staging_dataset_name_layout"] = f"%s_{pipeline_name}_staging"
    if destination == "duckdb" and credentials is None:
        # In the project folder, not where a pipeline of this name first ran (project.py).
        credentials = project.duckdb_credentials(pipeline_name)
    if destination == "duckdb" and isinstance(credentials, str):
        credentials = duckdb_load_credentials(credentials, config.duckdb_memory_limit,
                                              pipeline_name)
    # Options go to dlt's destination factory; whatever is not given resolves from dlt config.
    dest: object = Destination.from_reference(destination, credentials=credentials, **options) \
        if credentials is not None or options else destination
    for key, value in EXTRACT_WRITER.items():
        if dlt.config.get(key) is None:
            dlt.config[key] = value
    if pipelines_dir is None:
        folder = project.writable(project.pipelines_dir(config.pipelines_dir))
        project.adopt_shared_folder(pipeline_name, folder, config.overlap_wait_seconds)
        pipelines_dir = str(folder)
    said = _StateDestinationWarnings()  # this pipeline's only: other pipelines keep dlt's words
    dlt_log = logging.getLogger("dlt")
    dlt_log.addFilter(said)
    try:
        pipeline = dlt.pipeline(pipeline_name=pipeline_name, destination=dest, dataset_name=dataset,
                                pipelines_dir=pipelines_dir)
    finally:
        dlt_log.removeFilter(said)
    if said.before:
        log.info("pipeline %s last ran with %s; it loads into %s now, as configured",
                 pipeline_name, said.before, destination)
    # A new DuckDB file in a format dashboard tools open.
    prepare_duckdb_file(pipeline, config.duckdb_storage_version)
    return pipeline


# dlt's writer of extracted files (its extract stage's settings, [sources.data_writer]), unless
# configured otherwise. It joins what is yielded until it holds buffer_max_items rows (5,000 by
# default) and writes them as one line, which the normalizer parses whole: a round of the loop at
# 10,000 accounts wrote one line of 4 MB that took 60 MB to parse. A flush per page (the sync
# yields a page at a time) keeps that to a page.
EXTRACT_WRITER = {"sources.data_writer.buffer_max_items": 100}


class _StateDestinationWarnings(logging.Filter):
    """dlt warns, when it restores a pipeline whose local state names another destination, that
    the state's is ignored: the configured one wins, and make_pipeline says so once in the
    project's words instead (`before`: the state's)."""

    before: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "in state differs from destination" in text:
            self.before = text.removeprefix("The destination ").split(":", 1)[0].rsplit(".", 1)[-1]
            return False
        return not text.startswith("The state staging destination")




def refuse_shards_into(destination: str) -> None:
    """Shards load into one dataset at once; a DuckDB file takes one writer at a time."""
    if destination in ("duckdb", "motherduck"):
        raise ConfigError("sharding needs a warehouse that takes concurrent writers (postgres, "
                          "bigquery, snowflake ...); a DuckDB file takes one writer at a time: "
                          "sync all accounts in one process instead.")


def duckdb_load_credentials(path: str, memory_limit: str, pipeline_name: str) -> dict:
    """The DuckDB file's credentials for dlt's factory, with the settings of a load
    (`memory_limit`: duckdb_memory_limit) unless the user configured a global_config of their
    own under destination.duckdb.credentials (or <pipeline_name>.destination.duckdb.credentials).

    DuckDB takes 80 % of RAM by default; a sync shares its box with dashboards. Loads spill to
    disk past this limit instead; the SQL models lift it again (models.py). Rows need no
    particular order on disk (queries sort): without it DuckDB's inserts take less memory and
    time.
    """
    for key in (f"{pipeline_name}.destination.duckdb.credentials.global_config",
                "destination.duckdb.credentials.global_config"):
        if dlt.secrets.get(key) is not None or dlt.config.get(key) is not None:
            return {"database": path}  # the user's own, for this pipeline or all
    return {"database": path, "global_config": {
        "memory_limit": memory_limit, "preserve_insertion_order": False,
        "threads": DUCKDB_LOAD_THREADS}}


def count_runs(pipeline: dlt.Pipeline, config: SyncConfig | None = None) -> int | None:
    """Rows in zap_runs now (0 before its first load), or None where the destination cannot
    be queried."""
    counted = lake_count(pipeline, "zap_runs", config)  # a Delta lake answers without SQL
    if counted is not None:
        return counted
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("zap_runs")
            with client.execute_query(f"select count(*) from {table}") as cursor:
                return int(cursor.fetchone()[0])
    except DatabaseUndefinedRelation:  # the dataset or the table does not exist yet
        return 0
    except Exception:  # noqa: BLE001 - a destination without SQL, or one that failed to answer
        return None


def sync(pipeline: dlt.Pipeline, progress: SyncProgress | None = None,
         on_stage: Callable[[str], None] = lambda stage: None, config: SyncConfig | None = None,
         **source_args: object) -> SyncResult:
    """Run one incremental sync into `pipeline`'s destination (`config`: resolved from
    [sources.zap_runs] unless given; `source_args` override the source's own configuration).

    `progress` gets the counters as they change and `on_stage` each stage ("fetching",
    "loading") as it starts, for a progress display (output/progress.py).

    The steps run one by one rather than through `pipeline.run`: a load package left by a
    crashed sync is aborted first (recovery.py) and the new sync still runs (run() would stop
    there, finishing it).
    """
    started = time.monotonic()
    config = config if config is not None else sync_config()
    progress = progress if progress is not None else SyncProgress()
    shard = source_args.get("shard")
    source = prepare(pipeline, config, progress, source_args)
    # Shards load into the dataset at once: its row count tells nothing of this one's runs.
    before = None if shard else count_runs(pipeline, config)
    on_stage("fetching")
    fetching = extract(pipeline, source, progress)
    on_stage("loading")
    normalized, info = load_and_repair(pipeline, config)
    after = None if shard else count_runs(pipeline, config)
    return result_of(pipeline, progress, normalized, info, before, after,
                     elapsed=time.monotonic() - started, fetching=fetching)


def prepare(pipeline: dlt.Pipeline, config: SyncConfig, progress: SyncProgress,
            source_args: dict) -> DltSource:
    """The source, with the merge the destination supports (refused before any request where
    it can only append), once the destination is free and what an interrupted sync left is
    aborted (recovery.py)."""
    shard = source_args.get("shard")
    if dlt.config.get("sources.zap_runs.shard") and not shard:
        raise ConfigError("shard is set in the configuration (sources.zap_runs.shard): it is a "
                          "choice per worker, made with --shard i/n, which also gives the shard "
                          "its own pipeline; remove it from the configuration.")
    if shard:
        refuse_shards_into(pipeline.destination.destination_name)
    # The sync log and the exit code tell of failed accounts here, after the repairs below.
    from ..source import zap_runs_source  # a command that only reads the warehouse loads no reader

    source = zap_runs_source(progress=progress, **{**source_args, "raise_on_failed_accounts": False})
    prepare_source(source, pipeline, config)
    wait_for_duckdb(pipeline, config.lock_wait_seconds)
    abort_pending(pipeline)
    pipeline.sync_destination()
    add_account_id(pipeline, progress.default_account)  # tables from before accounts, once
    return source


def extract(pipeline: dlt.Pipeline, source: DltSource, progress: SyncProgress) -> float:
    """Read the runs from the API into a load package; the seconds it took."""
    fmt = "parquet" if pipeline.destination.destination_name == "duckdb" else None
    began = time.monotonic()
    try:
        pipeline.extract(source, loader_file_format=fmt)
    finally:
        if progress.client is not None:
            progress.client.close()
    return time.monotonic() - began


def load_and_repair(pipeline: dlt.Pipeline, config: SyncConfig) -> tuple[object, LoadInfo]:
    """Normalize and load the package, then what dlt leaves to do: the second copy of a copy
    job it ran again after its commit (merge_gap.py), a Delta lake's stale steps, and the
    packages it keeps (packages.py). (dlt's normalize info, its load info.)"""
    normalized = pipeline.normalize()
    info = load(pipeline)
    drop_rows_of_retried_copies(pipeline, info)
    drop_stale_steps(pipeline, config)
    prune_loaded_packages(pipeline)
    return normalized, info


def result_of(pipeline: dlt.Pipeline, progress: SyncProgress, normalized: object,
              info: LoadInfo, before: int | None, after: int | None, elapsed: float,
              fetching: float) -> SyncResult:
    """The SyncResult of a sync, from its progress counters and the run counts around it."""
    stats = progress.client.stats if progress.client else None
    row_counts = normalized.row_counts if normalized else {}
    new = None if after is None else after - (before or 0)
    fetched = progress.fetched
    return SyncResult(
        destination=pipeline.destination.destination_name,
        dataset=pipeline.dataset_name,
        window_from=progress.window_from,
        window_to=progress.window_to,
        runs_fetched=fetched,
        runs_new=new,
        runs_updated=None if new is None else fetched - new,
        steps_loaded=int(row_counts.get("zap_runs__steps", 0)),
        open_runs=progress.open_runs,
        rechecks=progress.rechecks,
        requests=stats.requests if stats else 0,
        retries=stats.retries if stats else 0,
        rate_limited=stats.rate_limited if stats else 0,
        elapsed=elapsed,
        fetching=fetching,
        warnings=list(progress.warnings),
        load_info=info,
        spend=progress.spend,
        accounts=list(progress.outcomes) if progress.many else [],
        location=duckdb_path(pipeline),
        due=progress.due,
        configured=progress.configured,
    )


# Shards loading into one dataset at once may race to create or alter the same tables; dlt
# re-reads the destination on a retry, so a load whose schema update lost the race is retried.
SCHEMA_RACE_ATTEMPTS = 5


def load(pipeline: dlt.Pipeline) -> LoadInfo:
    """pipeline.load(), again when its schema update lost a race with another writer
    (dlt.pipeline.helpers.retry_schema_update); the package stays normalized in between."""
    lost_race = retry_schema_update()
    for attempt in range(1, SCHEMA_RACE_ATTEMPTS + 1):
        try:
            return pipeline.load()
        except PipelineStepFailed as exc:
            if attempt == SCHEMA_RACE_ATTEMPTS or not lost_race(exc):
                raise
            log.info("the schema update raced another writer (%s); loading again",
                     first_line(exc.exception, 160))
    raise AssertionError("unreachable")


def logged_sync(pipeline: dlt.Pipeline, config: SyncConfig | None = None,
                  progress: SyncProgress | None = None, **source_args: object) -> SyncResult:
    """`sync` under the pipeline's run lock, its outcome appended to zap_runs_sync_log: one row
    per account (sync_id names the pass)."""
    config = config if config is not None else sync_config()
    progress = progress if progress is not None else SyncProgress()
    with SyncLock(Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.lock",
                  config.overlap_wait_seconds):
        sync_id, started = str(uuid.uuid4()), utcnow()
        try:
            result = sync(pipeline, progress=progress, config=config, **source_args)
        except BaseException as exc:
            error = unwrap(exc, pipeline.destination.destination_name) \
                if isinstance(exc, Exception) else exc
            rows = failed_pass(sync_id, started, error, progress)
            if rows:  # the error that follows says why, should the log be out of reach too
                synclog.record(pipeline, rows, quiet=True)
            raise
        synclog.record(pipeline, outcomes_of(sync_id, started, result, progress))
        return result


def failed_pass(sync_id: str, started, error: BaseException, progress: SyncProgress) -> list[Outcome]:
    """The sync log rows of a pass that failed: nothing of it was committed, so every account
    it read failed with it; bad entries stay what they are. A configuration error before any
    account was read (a bad --since, a bad destination) is no account's: nothing is recorded."""
    read = [o for o in progress.outcomes if o.result != "invalid"]
    if not read and isinstance(error, ConfigError):
        return []
    message = first_line(error, 500)
    rows = [Outcome(sync_id, started, utcnow(), "failed", account_id=o.account, error=message)
            for o in read] or [Outcome(sync_id, started, utcnow(), "failed", error=message,
                                       account_id=None if progress.many else progress.default_account)]
    return rows + [invalid_row(sync_id, o) for o in progress.outcomes if o.result == "invalid"]


def invalid_row(sync_id: str, outcome: AccountOutcome) -> Outcome:
    """A bad entry of the configuration: no account (account_id NULL), its message says where."""
    return Outcome(sync_id, outcome.started_at, outcome.ended_at or outcome.started_at, "invalid",
                   error=outcome.error)


def outcomes_of(sync_id: str, started, result: SyncResult, progress: SyncProgress) -> list[Outcome]:
    """The sync log rows of a finished pass: the pass's totals for a single account, one row
    per account for many."""
    if not progress.many:
        outcome = Outcome(sync_id, started, utcnow(), "success", account_id=progress.default_account)
        outcome.warning = "; ".join(result.warnings) or None
        for name in ("window_from", "window_to", "runs_fetched", "runs_new", "runs_updated",
                     "steps_loaded", "open_runs", "requests", "retries", "rate_limited"):
            setattr(outcome, name, getattr(result, name))
        _spent(outcome, result.spend)
        if progress.outcomes:  # the one account's schedule (accounts/sweep.py)
            read = progress.outcomes[0]
            outcome.last_read_at, outcome.next_due_at = read.last_read_at, read.next_due_at
            outcome.due_reason = read.due_reason
        return [outcome]
    rows = []
    for account in result.accounts:
        if account.result == "invalid":
            rows.append(invalid_row(sync_id, account))
            continue
        outcome = Outcome(sync_id, account.started_at, account.ended_at or utcnow(), account.result,
                          account_id=account.account, error=account.error,
                          requests=account.requests, retries=account.retries,
                          rate_limited=account.rate_limited, last_read_at=account.last_read_at,
                          next_due_at=account.next_due_at, due_reason=account.due_reason)
        read = account.progress
        if read is not None and account.result == "success":
            outcome.window_from, outcome.window_to = read.window_from, read.window_to
            outcome.runs_fetched, outcome.open_runs = account.fetched, read.open_runs
            outcome.warning = "; ".join(read.warnings) or None
            _spent(outcome, read.spend)
        rows.append(outcome)
    return rows


def _spent(outcome: Outcome, spend: Spend) -> None:
    for purpose, spent in spend.by_purpose.items():
        setattr(outcome, f"requests_{purpose}", spent)
    outcome.budget, outcome.budget_ratio = spend.budget.total, spend.ratio
