"""The async engine and session factory, for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.settings import Settings

# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0

SessionMaker = async_sessionmaker[AsyncSession]

# Serialization failure and deadlock (PostgreSQL): the transaction may simply be run again.
_RETRYABLE_SQLSTATES = ("40001", "40P01")


def lost_a_race(exc: DBAPIError) -> bool:
    """The transaction was aborted for another's sake (a deadlock, a serialization
    failure): running it again is the remedy."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(
        getattr(exc.orig, "__cause__", None), "sqlstate", None
    )
    return state in _RETRYABLE_SQLSTATES


def create_engine(settings: Settings, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping=False` for workers: a job that meets a dead connection just fails, and
    the sweeper sends its deliveries again, so a ping buys nothing."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        # SQLite allows one writer: one pooled connection makes the process queue
        # for it instead of failing with "database is locked". Nothing holds a
        # session across network I/O, so the wait is short.
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            connect_args={"timeout": 30},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, pool_size=20, max_overflow=20, pool_recycle=1800)
    if pre_ping:
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Ping a pooled connection before handing it out when it sat idle for a while, so
    that the first request after a database restart gets a new connection instead of
    failing on a dead one.

    SQLAlchemy's own pre-ping pings at every checkout, three round trips with asyncpg
    (BEGIN, an empty query, ROLLBACK): under load that was a tenth of the API's CPU
    per publish, for connections that had been used a moment before. A connection
    that dies while it is used this often is dropped with the whole pool at its
    first error (SQLAlchemy invalidates the pool on a disconnect), as it was before.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "connect")
    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()  # a new connection needs no ping

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool replaces the connection and tries again
            raise DisconnectionError(str(exc)) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False)
