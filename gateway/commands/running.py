"""Running a command's database work: a fresh engine, and the services' errors as messages
and exit codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.db import SessionMaker
    from gateway.settings import Settings

from gateway.commands.common import (
    EXIT_USAGE,
    fail,
    require_database_file,
    shown_url,
)

T = TypeVar("T")


def run_db(
    settings: Settings,
    work: Callable[[SessionMaker], Awaitable[T]],
    names: dict[str, str] | None = None,
) -> T:
    """Run `work` with the sessionmaker of a fresh engine, disposed afterwards.

    The services' errors become messages and exit codes (`names` maps their field
    names to the command's options); so do database failures, without a traceback.
    """
    import asyncio

    from gateway.db import create_engine, create_sessionmaker

    require_database_file(settings)

    async def main() -> T:
        engine = create_engine(settings)
        try:
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    return guarded(settings, lambda: asyncio.run(main()), names)


def run(
    settings: Settings,
    work: Callable[[AsyncSession], Awaitable[T]],
    names: dict[str, str] | None = None,
) -> T:
    """`run_db` for work done in one session."""

    async def in_session(sessionmaker: SessionMaker) -> T:
        async with sessionmaker() as session:
            return await work(session)

    return run_db(settings, in_session, names)


def guarded(settings: Settings, call: Callable[[], T], names: dict[str, str] | None = None) -> T:
    """`call()`, with the services' and the database's errors turned into exits."""
    from sqlalchemy.exc import DBAPIError

    from gateway.crypto import SecretKeyError
    from gateway.errors import GatewayError, Invalid

    try:
        return call()
    except Invalid as exc:
        field = ".".join(str(p) for p in exc.loc if p != "body")
        where = (names or {}).get(field, field)
        fail(f"{where}: {exc.detail}" if where else exc.detail, EXIT_USAGE)
    except GatewayError as exc:
        fail(exc.detail)
    except SecretKeyError as exc:
        fail(str(exc))
    except (DBAPIError, OSError) as exc:
        reason = describe(exc)
        hint = (
            "the schema is behind: run `gateway migrate`"
            if _missing_schema(reason)
            else "run `gateway doctor`"
        )
        fail(f"the database at {shown_url(settings.database_url)} failed: {reason}; {hint}")


def describe(exc: BaseException) -> str:
    """`Class: first line` of what went wrong, seen through SQLAlchemy's and drivers' wrappers."""
    orig = getattr(exc, "orig", None) or exc
    if type(orig).__name__ == "Error" and orig.__cause__ is not None:
        orig = orig.__cause__  # asyncpg's own exception, under SQLAlchemy's adapter
    text = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


def _missing_schema(reason: str) -> bool:
    """The schema is missing or older than the code (SQLite's and PostgreSQL's words)."""
    return any(
        words in reason for words in ("no such table", "no such column", "has no column named")
    ) or ("does not exist" in reason and ("relation" in reason or "column" in reason))
