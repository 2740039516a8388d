"""What `gateway serve` and `gateway worker` check before they start, each problem in one line.

A process that starts against a configuration that cannot work answers every
request with a 500 and logs tracebacks nobody can act on. So: a secret key that
cannot be used, a database that cannot be reached, or a schema behind this version
stop the start with one line naming the fix (exit 2 for configuration, 1 for the
rest; the traceback is logged at DEBUG). Redis is different: the API keeps
accepting events while it is down (the sweeper queues them once it is back), so a
dead Redis is a warning at start, and /readyz goes on saying so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from gateway.commands.common import EXIT_FAILED, err, load_box, shown_url, sqlite_file

if TYPE_CHECKING:
    from gateway.settings import Settings

log = logging.getLogger("gateway")


def describe(exc: BaseException) -> str:
    """An exception as one line: its type and first line of message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def stop(message: str, exc: BaseException | None = None) -> typer.Exit:
    if exc is not None:
        log.debug("start refused", exc_info=exc)
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(EXIT_FAILED)


def check_before_start(settings: Settings, *, migrate: bool, without_redis: str) -> None:
    """Refuse to start (one line, exit) or warn, in the order an operator fixes things:
    the configuration, the database, then Redis. `without_redis`: what this process
    does while Redis is down, for the warning."""
    if not settings.is_sqlite:
        load_box(settings)  # a shared database needs the key every process shares (exit 2)
    _check_database(settings, migrate=migrate)
    if settings.is_sqlite:
        load_box(settings)  # made beside the database on its first start
    warn_if_redis_down(settings, without_redis)


def _check_database(settings: Settings, *, migrate: bool) -> None:
    """Reach the database and check (or, embedded, bring up) its schema."""
    if not log.isEnabledFor(logging.DEBUG):
        # Alembic's INFO lines (some at import) tell an operator nothing at this point.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from gateway import migrate as migrations

    where = shown_url(settings.database_url)
    path = sqlite_file(settings)
    if path is not None and not path.parent.is_dir():
        raise stop(
            f"the folder of the SQLite database {path} does not exist: create it, or set "
            "GATEWAY_DATABASE_URL"
        )
    try:
        if migrate:
            migrations.upgrade(settings)  # embedded: one command gives a working gateway
        problem = asyncio.run(migrations.schema_problem(settings))
    except Exception as exc:
        raise stop(
            f"cannot use the database at {where} ({describe(exc)}); check that it is "
            "running and that GATEWAY_DATABASE_URL is right",
            exc,
        ) from None
    if problem is not None:
        raise stop(problem)


def warn_if_redis_down(settings: Settings, waiting: str) -> None:
    if settings.redis_url is None:
        return
    try:
        asyncio.run(_ping(settings.redis_url))
    except Exception as exc:
        log.debug("redis ping failed", exc_info=exc)
        err.print(
            f"[yellow]warning:[/yellow] Redis at {escape(shown_url(settings.redis_url))} "
            f"does not answer ({escape(describe(exc))}): {waiting}"
        )


async def _ping(url: str) -> None:
    from gateway.queue.connection import connect

    client = connect(url, "arq:queue", connect_timeout=2, timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()
