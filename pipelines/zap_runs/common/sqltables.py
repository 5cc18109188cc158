"""What the hand-made SQL asks of a destination's tables: which columns one has (or whether it
exists at all), and the ALTER that adds one, in the destination's own words."""

from __future__ import annotations

import sqlglot


def columns_of(client, qualified: str) -> set[str] | None:
    """The table's column names (lower case), or None when it does not exist. Ask outside any
    transaction: a failed query aborts one on PostgreSQL."""
    try:
        with client.execute_query(f"select * from {qualified} where 1 = 0") as cursor:
            return {d[0].lower() for d in cursor.description}
    except Exception:  # noqa: BLE001 - the destination's "undefined relation", whatever its type
        return None


def exists(client, qualified: str) -> bool:
    return columns_of(client, qualified) is not None


def add_column(qualified: str, name: str, kind: str, dialect: str) -> str:
    """ALTER TABLE ... ADD COLUMN with the type in the destination's words (STRING on BigQuery),
    written in PostgreSQL's; the table's name as the client quoted it (sqlglot would misread a
    BigQuery-quoted one)."""
    sql = sqlglot.transpile(f"alter table t_ add column {name} {kind}", read="postgres",
                            write=dialect)[0]
    return sql.replace("t_", qualified, 1)


def in_utc(client, dialect: str) -> None:
    """Make the session's time zone UTC where the destination has one (DuckDB, PostgreSQL):
    times are bucketed and read back in UTC."""
    if dialect == "duckdb":
        client.execute_sql("set TimeZone = 'UTC'")
    elif dialect == "postgres":
        client.execute_sql("set time zone 'UTC'")
