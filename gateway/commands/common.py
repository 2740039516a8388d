"""What the management commands share: settings, output, the database, the dispatcher.

Commands talk to the database directly with the services the API uses. Output:
tables (or `--json`) on stdout; errors, notes and progress on stderr. Exit codes:
0 done, 1 the operation failed (unknown id, conflict, unreachable service),
2 the input or the configuration is wrong (as for typer's own usage errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from gateway.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.crypto import SecretBox
    from gateway.db import SessionMaker
    from gateway.queue.dispatch import ArqDispatcher

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2

err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False)
if not out.is_terminal and "COLUMNS" not in os.environ:
    out.width = 200  # piped into grep or a file: whole rows beat folded cells

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Limit = Annotated[int, typer.Option(min=1, max=250, help="How many to show, newest first.")]
Cursor = Annotated[str | None, typer.Option(
    help="Continue after this id: the next_cursor of the previous page (see --json).")]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line for the user on stderr (rich markup allowed; escape what comes from data)."""
    err.print(message)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "configuration"
            err.print(f"[red]invalid configuration[/red] GATEWAY_{where.upper()}: {error['msg']}")
        raise typer.Exit(EXIT_USAGE) from None


def load_box(settings: Settings) -> SecretBox:
    """The secret box; a missing or malformed key is a configuration error (exit 2)."""
    from gateway.crypto import SecretKeyError
    from gateway.crypto import load_box as load

    require_database_file(settings)  # before a key file is made beside a database that is not
    try:
        return load(settings)
    except (SecretKeyError, OSError) as exc:
        err.print(f"[red]invalid configuration[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None


def shown_url(url: str) -> str:
    """A database or Redis URL with its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file, or None for PostgreSQL or an in-memory database."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def require_database_file(settings: Settings) -> None:
    """Refuse to work on a SQLite file that is not there (connecting would create it empty)."""
    path = sqlite_file(settings)
    if path is not None and not path.exists():
        fail(f"the database file {path} does not exist: run `gateway migrate`, or set "
             "GATEWAY_DATABASE_URL to the gateway's database")


def input_error(exc: ValidationError, names: dict[str, str] | None = None) -> NoReturn:
    """Pydantic's complaints about what the user typed, by option name; exit 2."""
    names = names or {}
    problems = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{names.get(field, field)}: {message}")
    fail("; ".join(problems), EXIT_USAGE)


# running database work


def run_db(settings: Settings, work: Callable[[SessionMaker], Awaitable[T]],
           names: dict[str, str] | None = None) -> T:
    """Run `work` with the sessionmaker of a fresh engine, disposed afterwards.

    The services' errors become messages and exit codes (`names` maps their field
    names to the command's options); so do database failures, without a traceback.
    """
    from gateway.db import create_engine, create_sessionmaker

    require_database_file(settings)

    async def main() -> T:
        engine = create_engine(settings)
        try:
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    return guarded(settings, lambda: asyncio.run(main()), names)


def run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]],
        names: dict[str, str] | None = None) -> T:
    """`run_db` for work done in one session."""

    async def in_session(sessionmaker: SessionMaker) -> T:
        async with sessionmaker() as session:
            return await work(session)

    return run_db(settings, in_session, names)


def guarded(settings: Settings, call: Callable[[], T],
            names: dict[str, str] | None = None) -> T:
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
        hint = ("the schema is behind: run `gateway migrate`" if _missing_schema(reason)
                else "run `gateway doctor`")
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
    return any(words in reason for words in ("no such table", "no such column",
                                             "has no column named")) or (
        "does not exist" in reason and ("relation" in reason or "column" in reason))


# dispatching


class CommandDispatcher:
    """A command's Dispatcher: arq when GATEWAY_REDIS_URL is set, else nothing at all.

    In embedded mode the work is committed as pending and `gateway serve`'s sweeper
    sends it; nothing can be handed to that process from here. Counts what was
    queued, for the note the command prints, and reports each job to `on_enqueue`.
    Made outside the event loop (it connects on first use), closed with `async with`.
    """

    def __init__(self, settings: Settings,
                 on_enqueue: Callable[[str, tuple[Any, ...]], None] | None = None) -> None:
        from gateway.queue.dispatch import ArqDispatcher

        self.settings = settings
        self.on_enqueue = on_enqueue
        self.queued = 0
        self.missed = 0
        self.arq: ArqDispatcher | None = None
        if settings.redis_url is not None:
            self.arq = ArqDispatcher(settings.redis_url, settings.queue_name)
            # Its outage warning would repeat the note this command prints.
            logging.getLogger("gateway.queue").setLevel(logging.ERROR)

    async def enqueue(
        self, function: str, *args: Any, job_id: str, defer_seconds: float = 0
    ) -> bool:
        done = self.arq is not None and await self.arq.enqueue(
            function, *args, job_id=job_id, defer_seconds=defer_seconds)
        if done:
            self.queued += 1
        else:
            self.missed += 1
        if self.on_enqueue is not None:
            self.on_enqueue(function, args)
        return done

    async def ping(self) -> bool:
        return self.arq is None or await self.arq.ping()

    async def close(self, grace: float = 0) -> None:
        if self.arq is not None:
            await self.arq.close(grace)

    async def __aenter__(self) -> CommandDispatcher:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def summary(self) -> str:
        """What became of the work, for the user."""
        pickup = self.settings.sweep_grace + self.settings.sweep_interval
        if self.arq is None:
            return ("GATEWAY_REDIS_URL is not set (embedded mode), so nothing was queued: "
                    f"the running `gateway serve` picks the work up within about {pickup:g} s.")
        if self.missed:
            return (f"[yellow]Redis did not take {self.missed} of {self.missed + self.queued} "
                    "jobs[/yellow]: the work is stored as pending, and the workers' sweeper "
                    "sends it once Redis answers (check with `gateway doctor`).")
        return "queued for the workers."


# output


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def dump(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """`value` (a row or a dict) as the API shows it: through its response model."""
    return model.model_validate(value, from_attributes=True).model_dump(mode="json")


def print_page(rows: list[dict[str, Any]], next_cursor: str | None, as_json: bool,
               columns: dict[str, str], what: str,
               shown: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """One page of a list: with --json as the API pages it, else as a table of `columns`
    (each row through `shown` first, for columns the API does not have)."""
    if as_json:
        print_json({"data": rows, "next_cursor": next_cursor})
    else:
        print_table(rows if shown is None else [shown(row) for row in rows], columns, what,
                    next_cursor)


_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def cell(value: Any, key: str = "") -> Text:
    """A value for a table; `key` ending in _at or _since is a time, shown to the second."""
    if value is None or value == []:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list):
        return Text(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return Text(json.dumps(value, ensure_ascii=False))
    if isinstance(value, datetime):
        return Text(value.strftime("%Y-%m-%d %H:%M:%S"))
    if key.endswith(("_at", "_since")) and isinstance(value, str) and _ISO_TIME.match(value):
        return Text(value[:19].replace("T", " "))  # a time in the JSON form, to the second
    return Text(str(value))


def print_table(rows: Iterable[dict[str, Any]], columns: dict[str, str], what: str,
                next_cursor: str | None = None) -> None:
    """Rows as a table on stdout (`columns`: key -> heading); "no <what>" when empty."""
    rows = list(rows)
    if not rows:
        note(f"no {what}")
        return
    table = Table(header_style="bold")
    for key, heading in columns.items():
        is_id = key == "id" or key.endswith("_id")
        table.add_column(heading, no_wrap=is_id, min_width=len(heading),
                         overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(key), key) for key in columns))
    out.print(table)
    if next_cursor is not None:
        note(f"[dim]more {what}: add --cursor {next_cursor}[/dim]")


def print_record(record: dict[str, Any], fields: dict[str, str] | None = None) -> None:
    """One object as a two-column table on stdout."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, label in (fields or {k: k for k in record}).items():
        table.add_row(label, cell(record.get(key), key))
    out.print(table)
