"""`gateway purge`: the retention purge the workers run hourly, now, with a progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gateway.commands.common import JsonFlag, err, load_settings, note
from gateway.commands.output import print_json
from gateway.commands.running import run_db

if TYPE_CHECKING:
    from gateway.db import SessionMaker


def purge(
    days: Annotated[
        float | None,
        typer.Option(help="Keep this many days (default GATEWAY_RETENTION_DAYS).", min=0.001),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete events older than the retention period, with their deliveries and attempts."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from gateway.outbound.retention import purge as purge_expired

    settings = load_settings()
    keep = days if days is not None else settings.retention_days
    progress = Progress(
        SpinnerColumn(),
        TextColumn("purging: {task.completed} events"),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    )
    task = progress.add_task("purge", total=None)

    async def work(sessionmaker: SessionMaker) -> int:
        with progress:
            return await purge_expired(sessionmaker, keep, lambda n: progress.advance(task, n))

    count = run_db(settings, work)
    note(f"purged {count} events older than {keep:g} days (pending deliveries are kept)")
    if as_json:
        print_json({"purged": count})
    else:
        print(count)
