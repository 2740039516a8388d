"""The async engine and session factory, for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.settings import Settings

SessionMaker = async_sessionmaker[AsyncSession]


def create_engine(settings: Settings, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping=False` for workers: a job that meets a dead connection just fails, and
    the sweeper sends its deliveries again, so the extra round trip buys nothing."""
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
    # Pre-ping costs a round trip per checkout, but without it the first request
    # after a database restart fails on a dead connection instead of getting a new one.
    return create_async_engine(
        url, pool_size=20, max_overflow=20, pool_pre_ping=pre_ping, pool_recycle=1800
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False)
