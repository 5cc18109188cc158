"""SQL models: the status lookup, staging views and mart tables built from sql/ on the destination."""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import dlt
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify_tables import qualify_tables

from ..accounts import state as account_state
from ..common.errors import ConfigError, ZapRunsError
from ..common.settings import SQL_DIALECTS
from ..common.sqltables import exists, in_utc
from ..common.sync_config import SyncConfig, sync_config
from . import synclog

log = logging.getLogger(__name__)

# Shipped inside the package (a wheel carries it); the repo's top-level sql/ links here.
SQL_DIR = files(__package__) / "sql"
SOURCE_DIALECT = "postgres"  # models are written in PostgreSQL's SQL, which DuckDB also reads
LAYERS = ("staging", "intermediate", "marts")


@dataclass(frozen=True)
class Model:
    """One SQL file: its relation name, layer (staging: views; intermediate and marts: tables,
    so what several marts read is computed once) and SELECT."""

    name: str
    layer: str
    sql: str

    @property
    def kind(self) -> str:
        return "view" if self.layer == "staging" else "table"


def load_models(sql_dir: Traversable = SQL_DIR) -> list[Model]:
    """Staging, intermediate, then marts; within a layer in name order, except that a model comes
    after the models of its layer it reads (account_health reads zap_health)."""
    models = []
    for layer in LAYERS:
        paths = [p for p in (sql_dir / layer).iterdir() if p.is_file() and p.name.endswith(".sql")]
        found = [Model(path.name.removesuffix(".sql"), layer, path.read_text(encoding="utf-8"))
                 for path in sorted(paths, key=lambda p: p.name)]
        models.extend(_inputs_first(found))
    return models


def _reads(model: Model) -> set[str]:
    """The relations a model's SELECT reads (its own CTEs left out)."""
    expression = sqlglot.parse_one(model.sql, read=SOURCE_DIALECT)
    ctes = {cte.alias_or_name for cte in expression.find_all(exp.CTE)}
    return {table.name for table in expression.find_all(exp.Table)} - ctes


def _inputs_first(models: list[Model]) -> list[Model]:
    """`models` (one layer, in name order) reordered so each comes after those it reads."""
    names = {m.name for m in models}
    pending = {m.name: _reads(m) & (names - {m.name}) for m in models}
    ordered: list[Model] = []
    while pending:
        # The first model (in name order) whose inputs are all built.
        model = next((m for m in models if m.name in pending and not pending[m.name]), None)
        if model is None:
            raise ZapRunsError(f"SQL models read each other in a cycle: {', '.join(sorted(pending))}.")
        ordered.append(model)
        del pending[model.name]
        for inputs in pending.values():
            inputs.discard(model.name)
    return ordered


def load_seed(name: str = "status_categories", sql_dir: Traversable = SQL_DIR) -> list[tuple]:
    with (sql_dir / "seeds" / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return [(r["status"], r["category"], r["is_finished"] == "true") for r in csv.DictReader(handle)]


def compile_model(model: Model, dialect: str, dataset: str | None) -> str:
    """The model's SELECT for `dialect`, its tables qualified with `dataset` (CTEs left alone)."""
    expression = sqlglot.parse_one(model.sql, read=SOURCE_DIALECT)
    if dataset:
        expression = qualify_tables(expression, db=dataset, dialect=dialect)
    return expression.sql(dialect=dialect)


def incident_rules(config: SyncConfig | None = None) -> tuple[int, int]:
    """(open_after, resolve_after) of the zap_incidents mart, from [sources.zap_runs]."""
    config = config if config is not None else sync_config()
    rules = (config.incident_open_after, config.incident_resolve_after)
    for key, value in zip(("incident_open_after", "incident_resolve_after"), rules, strict=True):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} under [sources.zap_runs] (or SOURCES__ZAP_RUNS__"
                              f"{key.upper()}) must be a whole number of runs, 1 or more, not "
                              f"{value!r}.")
    return rules


def build_models(pipeline: dlt.Pipeline, config: SyncConfig | None = None) -> dict[str, float]:
    """Rebuild the lookups, the views and the marts in one transaction; seconds per model.
    `config`: for the incident rules (incident_rules), [sources.zap_runs] unless given."""
    rules = incident_rules(config)
    name = pipeline.destination.destination_name
    dialect = SQL_DIALECTS.get(name)
    if dialect is None:
        raise ConfigError(f"SQL models need a SQL destination; {name!r} is not one "
                          f"(supported: {', '.join(sorted(SQL_DIALECTS))}).")
    dataset = pipeline.dataset_name
    timings: dict[str, float] = {}
    with pipeline.sql_client() as client:
        def q(relation: str) -> str:
            return client.make_qualified_table_name(relation)

        if not client.has_dataset():
            raise ZapRunsError(f"dataset {dataset!r} does not exist yet: run a sync first.")
        in_utc(client, dialect)
        if dialect == "duckdb":
            # The load's caps (pipeline.py) would slow big rebuilds.
            client.execute_sql("reset memory_limit")
            client.execute_sql("reset threads")
        if not (exists(client, q("zap_runs")) or exists(client, q("_dlt_loads"))):
            raise ZapRunsError(f"dataset {dataset!r} has no zap_runs table yet: run a sync first.")
        for table, columns in STAND_INS.items():
            if not exists(client, q(table)):
                # An account with no runs (or no steps) yet: dlt creates a table only once rows
                # reach it, so the models read an empty stand-in (dlt adds its columns later).
                client.execute_sql(sqlglot.transpile(f"create table {q(table)} ({columns})",
                                                     read="postgres", write=dialect)[0])
        if not exists(client, q(synclog.TABLE)):
            # account_health reads the sync log; a dataset may have none (its writes failed: a
            # sync only warns then). It is made as a sync makes it, so the next row lands in it.
            synclog.ensure_table(client, q(synclog.TABLE), dialect)
        # account_freshness reads the accounts' state rows, with the schedule's columns (a table
        # an older version made lacks them; a pass that read no account makes none).
        account_state.ensure_table(client, dialect)
        models = load_models()
        existing = {name: kind for name, kind in client.execute_sql(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = %s", client.dataset_name)}
        with client.begin_transaction():
            # Dependents first: views and marts read the lookup and each other's layers. Drop
            # what is there as what it is (a model may have changed from view to table).
            for model in reversed(models):
                if model.name in existing:
                    kind = "view" if "VIEW" in existing[model.name].upper() else "table"
                    client.execute_sql(f"drop {kind} if exists {q(model.name)}")
            started = time.perf_counter()
            _replace_table(client, q("status_categories"),
                           "status varchar, category varchar, is_finished boolean", load_seed())
            timings["status_categories"] = time.perf_counter() - started
            # The incident rules, as a table: zap_incidents reads them, and analysts see which
            # rules made the incidents they query.
            _replace_table(client, q("incident_rules"), "open_after integer, resolve_after integer",
                           [rules])
            for model in models:
                started = time.perf_counter()
                select = compile_model(model, dialect, dataset)
                client.execute_sql(f"create {model.kind} {q(model.name)} as {select}")
                timings[model.name] = time.perf_counter() - started
    log.info("built %d models in %.2f s", len(timings), sum(timings.values()))
    return timings


def build_incidents(pipeline: dlt.Pipeline) -> float | None:
    """Rebuild zap_incidents alone (the loop's alerts between two full rebuilds), with the rules
    and views of the last full build; its seconds, or None before any full build."""
    dialect = SQL_DIALECTS.get(pipeline.destination.destination_name)
    (model,) = [m for m in load_models() if m.name == "zap_incidents"]
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(model.name)
        if dialect is None or not exists(client, table) or \
                not exists(client, client.make_qualified_table_name("incident_rules")):
            return None
        in_utc(client, dialect)
        started = time.perf_counter()
        with client.begin_transaction():
            client.execute_sql(f"drop table if exists {table}")
            client.execute_sql(f"create table {table} as "
                               f"{compile_model(model, dialect, pipeline.dataset_name)}")
    return time.perf_counter() - started


def _replace_table(client, table: str, columns: str, rows: list[tuple]) -> None:
    """`table` (qualified) made anew with `columns` and `rows`: a lookup the models read."""
    client.execute_sql(f"drop table if exists {table}")
    client.execute_sql(f"create table {table} ({columns})")
    for row in rows:
        client.execute_sql(f"insert into {table} values ({', '.join(['%s'] * len(row))})", *row)


# The columns the models read, for tables dlt has not created yet (types as in reading/rows.py).
STAND_INS = {
    "zap_runs": "account_id varchar not null, id varchar not null, zap_id bigint not null, "
                "zap_title varchar, status varchar not null, start_time timestamptz, "
                "end_time timestamptz, data_in varchar, data_out varchar, fetched_at timestamptz not null",
    "zap_runs__steps": "account_id varchar not null, run_id varchar not null, "
                       "step_number bigint not null, zap_id bigint not null, status varchar, "
                       "start_time timestamptz",
    # dlt's list of loads, as dlt makes it: missing only where zap_runs was made by hand.
    "_dlt_loads": "load_id varchar not null, schema_name varchar, status bigint not null, "
                  "inserted_at timestamptz not null, schema_version_hash varchar",
}
