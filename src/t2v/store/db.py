"""Opening the database: engine set-up for SQLite and PostgreSQL, and migrations on open."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from t2v.errors import InvalidRequest
from t2v.store.tables import metadata

__all__ = ["Database", "MIGRATIONS_DIR", "default_database_url", "head_revision", "normalize_url", "open_database",
           "upgrade", "utcnow"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Execution option read by the SQLite "begin" hook: "IMMEDIATE" takes the write lock at BEGIN.
SQLITE_BEGIN = "t2v_sqlite_begin"

# Any constant: serialises concurrent migrations on one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7432765F6D6967  # "t2v_mig"


def utcnow() -> datetime:
    """Now, timezone-aware UTC: every time the store writes."""
    return datetime.now(timezone.utc)


def default_database_url(settings: Any) -> str:
    """``settings.database_url`` when set, else a SQLite file in the data dir."""
    url = getattr(settings, "database_url", None)
    if url:
        return str(url)
    return f"sqlite:///{Path(settings.home) / 't2v.db'}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; ``postgres://`` and ``postgresql://`` use the psycopg (3) driver."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise InvalidRequest(f"T2V_DATABASE_URL: {url!r} is not a database URL; use sqlite:////path/t2v.db or "
                             "postgresql://user:password@host:5432/t2v", field="database_url") from None
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def _is_memory(database: str | None) -> bool:
    return not database or database == ":memory:" or "mode=memory" in database


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _on_begin): the sqlite3 module's legacy
        # transaction control would run DDL and SELECTs outside of any transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def open_database(url: str | URL, *, migrate: bool = True, **engine_kw: Any) -> Engine:
    """Create an engine for ``url`` and bring its schema to the newest revision.

    SQLite: the parent folder is created, and every connection runs in WAL mode with a
    30 s busy timeout and foreign keys on. PostgreSQL: ``pool_pre_ping``.
    """
    u = normalize_url(url)
    kw: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if _is_memory(u.database):
            kw["poolclass"] = StaticPool
        elif not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        kw["pool_pre_ping"] = True
    kw.update(engine_kw)
    engine = create_engine(u, **kw)
    if engine.dialect.name == "sqlite":
        _setup_sqlite(engine)
    if migrate:
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, create_new: bool = True) -> None:
    """Bring the schema to ``revision`` in one transaction: the Alembic migrations, or for a new, empty database
    brought to the newest revision (``create_new``), the tables made from :mod:`t2v.store.tables` at once and
    stamped with it, as Alembic's documentation advises (the same schema: tests/store/test_repository.py compares
    both with the tables; on 2 cores a new SQLite file opens in about a third of the time)."""
    cfg = _alembic_config()
    with engine.connect() as conn:
        conn = conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            if create_new and revision == "head" and not inspect(conn).get_table_names():
                metadata.create_all(conn)
                command.stamp(cfg, revision)
            else:
                command.upgrade(cfg, revision)
    logger.debug("database at %s is at revision %s", engine.url.render_as_string(hide_password=True), revision)


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


class Database:
    """One shared Engine; every method runs one short transaction of its own."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the database write lock at BEGIN
        (BEGIN IMMEDIATE), so read-then-write sequences cannot interleave across
        threads or processes."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                yield conn
