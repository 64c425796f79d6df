"""Set-based statements shared by the writers of `store/`: ids taken before an insert, executemany without the
ORM's per-row work, and plain result rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlmodel import Session


def upsert(session: Session, table: Any) -> Any:
    """The session's dialect's INSERT, which has ON CONFLICT."""
    return dialect_insert(session.get_bind().dialect.name, table)


def dialect_insert(dialect: str, table: Any) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (the dialect is imported on use: PostgreSQL's is ~40 ms
    that a SQLite service never needs)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def new_ids(session: Session, table: Any, count: int) -> list[int]:
    """Ids for `count` new rows of `table`, taken before inserting them: RETURNING gives no row order that
    SQLite promises, and asking for one makes SQLAlchemy insert row by row; without RETURNING, the driver's
    own executemany runs the insert (see `insert_rows`)."""
    if not count:
        return []
    if session.get_bind().dialect.name == "postgresql":
        query = text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)")
        return [int(value) for (value,) in tuples(session.execute(query, {"n": count}))]
    # SQLite: this transaction holds the database's only write lock (BEGIN IMMEDIATE), so no one else can
    # take these ids before the insert does.
    top: int = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


def insert_rows(session: Session, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Run an INSERT without RETURNING for `rows` (dicts with the same keys) through the driver's executemany:
    SQLAlchemy compiles the statement for this database once, and each value goes through its column type's
    bind processor, but no parameter dict is built per row (a 3-column row cost 5 µs that way, 1 µs this)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    keys = list(rows[0])
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    columns = statement.table.c
    processors = {key: columns[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys}
    order = compiled.positiontup  # the parameter order of a positional paramstyle (SQLite's `?`), else None
    names = list(order) if order is not None else keys
    columns_out = [processed([row[name] for row in rows], processors[name]) for name in names]
    if order is not None:
        connection.exec_driver_sql(str(compiled), list(zip(*columns_out, strict=True)))
    else:
        connection.exec_driver_sql(
            str(compiled), [dict(zip(names, row, strict=True)) for row in zip(*columns_out, strict=True)]
        )


def processed(values: list[Any], process: Callable[[Any], Any] | None) -> list[Any]:
    """A column's values as the driver takes them; a value repeated in the batch (`now`) is processed once."""
    if process is None:
        return values
    done: dict[Any, Any] = {}
    return [done[value] if value in done else done.setdefault(value, process(value)) for value in values]


def many(session: Session, statement: Any, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Run one cached statement for all `rows` (executemany; with RETURNING, SQLAlchemy sends them as
    multi-row VALUES batches): compiling a statement with the values inlined cost more than running it."""
    if not rows:
        return []
    result = session.connection().execute(statement, list(rows))
    return tuples(result) if result.returns_rows else []


def tuples(result: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Result rows as plain tuples (SQLModel types them as objects)."""
    return [tuple(row) for row in result]
