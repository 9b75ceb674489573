"""SQLAlchemy 2 engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base: every table of every domain hangs off this metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite opens transactions lazily at the first write, so a SAVEPOINT taken before
    # any write would open (and its release commit) the whole transaction. Take over
    # transaction control: autocommit at the driver, an explicit BEGIN from SQLAlchemy.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (services return schemas)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], actor: str | None = None,
                clock: Any = None) -> Iterator[Session]:
    """A session committed on success and rolled back on any error.

    ``actor`` ("user:3", "apikey:7", "cli") switches on the audit trail for this unit of work;
    ``clock`` (a ``Clock``) stamps its audit rows.
    """
    session = factory()
    if clock is not None:
        session.info["clock"] = clock
    if actor is not None:
        session.info["actor"] = actor
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


LOOKUP_CHUNK = 5_000


def lookup(session: Session, key: Any, value: Any, keys: Iterable[Any]) -> dict[Any, Any]:
    """``key -> value`` for the given keys that exist (``None`` keys ignored).

    The keys are queried in chunks so a file of a million ids never builds one giant
    ``IN (...)`` list (SQLite caps bound parameters).
    """
    wanted = sorted({k for k in keys if k is not None})
    found: dict[Any, Any] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        part = wanted[start:start + LOOKUP_CHUNK]
        found.update(session.execute(select(key, value).where(key.in_(part))).tuples().all())
    return found


def exclusive(session: Session, name: str) -> None:
    """Hold the lock called ``name`` until ``session``'s transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so two workers replacing the same
    derived rows run one after the other instead of colliding on their keys. SQLite
    serialises write transactions itself, so nothing more is needed there.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
