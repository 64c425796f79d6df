"""Opening the database: SQLite (default, WAL) or PostgreSQL, with migrations applied by Alembic.

SQLite: the file and its directory are created private (0600/0700), every connection runs in WAL mode with
a busy timeout, and every transaction begins IMMEDIATE, so concurrent writers queue for the lock instead
of failing half-way with "database is locked".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.pool import ConnectionPoolEntry

from monitor.errors import MonitorError

DEFAULT_URL = "sqlite:///monitor.db"
_MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0005"
"""The newest migration in `migrations/versions` (a test keeps the two in step): a database already at it
needs no Alembic, which costs a quarter of a second to import and read its scripts."""


class DatabaseError(MonitorError):
    """The database cannot be opened or upgraded."""


def masked(url: str) -> str:
    """The database URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def open_engine(url: str = DEFAULT_URL) -> Engine:
    """An engine for `url`; SQLite files get their pragmas and private permissions."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise DatabaseError(f"not a database URL: {masked(url)} (e.g. sqlite:///monitor.db)") from e
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            _create_private(Path(database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://")


def _create_private(path: Path) -> None:
    path = path.expanduser()
    if path.parent != Path() and not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration not yet applied (`monitor db upgrade`; `monitor run` does it on start), up to
    `revision` (tests of a migration stop before it)."""
    if revision == "head" and current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except OperationalError as e:
        raise DatabaseError(f"cannot open the database {masked(str(engine.url))}: {_reason(e)}") from e


def current_revision(engine: Engine) -> str | None:
    """The database's migration revision in one query; None when it has none (new, or not monitor's)."""
    try:
        with engine.connect() as connection:
            versions: list[Any] = list(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    except OperationalError as e:
        if "alembic_version" in str(e.orig) or "does not exist" in str(e.orig):
            return None  # no table yet: Alembic creates it
        raise DatabaseError(f"cannot open the database {masked(str(engine.url))}: {_reason(e)}") from e
    except ProgrammingError:  # PostgreSQL: relation "alembic_version" does not exist
        return None
    return str(versions[0]) if len(versions) == 1 else None


def _reason(error: OperationalError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
