"""What the management commands share: settings, output, the database, the dispatcher.

Commands talk to the database directly with the services the API uses. Output:
tables (or `--json`) on stdout; errors, notes and progress on stderr. Exit codes:
0 done, 1 the operation failed (unknown id, conflict, unreachable service),
2 the input or the configuration is wrong (as for typer's own usage errors).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

# pydantic, SQLAlchemy and the settings (which need both) are imported where they are
# used, not here: every command imports this module, and `gateway --help` or a typo
# should not wait for them (tests/cli/test_cli_startup.py keeps it so).
if TYPE_CHECKING:
    from pydantic import ValidationError

    from gateway.crypto import SecretBox
    from gateway.settings import Settings

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2

err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False)
if not out.is_terminal and "COLUMNS" not in os.environ:
    out.width = 200  # piped into grep or a file: whole rows beat folded cells

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Limit = Annotated[int, typer.Option(min=1, max=250, help="How many to show, newest first.")]
Cursor = Annotated[
    str | None,
    typer.Option(help="Continue after this id: the next_cursor of the previous page (see --json)."),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def confirm_deletion(question: str) -> None:
    """Go on once the user says yes (on stderr, leaving stdout to the output); exit 1
    when they say no, 2 when nobody can answer (stdin closed: a script without --yes)."""
    try:
        agreed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        err.print()  # the prompt's line, which no answer ended
        fail(
            "nothing was deleted: there was no answer (add --yes to skip the question)", EXIT_USAGE
        )
    if not sys.stdin.isatty():
        err.print()  # an answer from a pipe is not echoed, nor is its newline
    if not agreed:
        fail("nothing was deleted")


def note(message: str) -> None:
    """A line for the user on stderr (rich markup allowed; escape what comes from data)."""
    err.print(message)


def load_settings() -> Settings:
    from pydantic import ValidationError

    from gateway.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "configuration"
            message = error["msg"].removeprefix("Value error, ")
            err.print(
                f"[red]invalid configuration[/red] GATEWAY_{where.upper()}: {escape(message)}"
            )
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
    from sqlalchemy.engine import make_url

    from gateway.redisurl import shown

    if url.startswith(("redis", "unix")):
        return shown(url)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file, or None for PostgreSQL or an in-memory database."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def require_database_file(settings: Settings) -> None:
    """Refuse to work on a SQLite file that is not there (connecting would create it empty)."""
    path = sqlite_file(settings)
    if path is not None and not path.exists():
        fail(
            f"the database file {path} does not exist: run `gateway migrate`, or set "
            "GATEWAY_DATABASE_URL to the gateway's database"
        )


def input_error(exc: ValidationError, names: dict[str, str] | None = None) -> NoReturn:
    """Pydantic's complaints about what the user typed, by option name; exit 2."""
    names = names or {}
    problems = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        # A field inside an option's JSON: the option, then the path in it.
        top, _, inner = field.partition(".")
        shown = names.get(field) or (f"{names[top]} {inner}" if top in names else field)
        problems.append(f"{shown}: {message}")
    fail("; ".join(problems), EXIT_USAGE)


def stop_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM, for a command that runs until stopped; called
    inside its running loop."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    return stop
