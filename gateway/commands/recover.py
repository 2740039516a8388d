"""`gateway recover`: re-queue an endpoint's failed deliveries, as POST .../recover does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import JsonFlag, err, input_error, load_settings, note
from gateway.commands.dispatching import CommandDispatcher
from gateway.commands.output import print_json, print_record
from gateway.commands.running import run

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession


def recover(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (ep_...).")],
    since: Annotated[
        str,
        typer.Option(
            help="Deliveries created at or after this time, e.g. 2026-11-01T00:00:00Z "
            "(no offset: UTC)."
        ),
    ],
    until: Annotated[
        str | None, typer.Option(help="...and before this time (default: now).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-queue the failed deliveries of an endpoint created since a time (after an outage)."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gateway.outbound import endpoints as service
    from gateway.outbound.schemas import Recover
    from gateway.queue.dispatch import DELIVER_DELIVERIES

    settings = load_settings()
    try:
        window = Recover.model_validate({"since": since, "until": until})
    except ValidationError as exc:
        input_error(exc, {"since": "--since", "until": "--until"})

    progress = Progress(
        TextColumn("re-queuing"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    )
    task = progress.add_task("recover", total=None)

    def dispatched(function: str, args: tuple[Any, ...]) -> None:
        if function == DELIVER_DELIVERIES:
            progress.advance(task, len(args[0]))

    dispatcher = CommandDispatcher(settings, on_enqueue=dispatched)

    async def work(session: AsyncSession) -> int:
        with progress:
            progress.update(
                task, total=await _failed_between(session, endpoint_id, window.since, window.until)
            )
            await session.rollback()  # end the read: recover runs in a transaction of its own
            async with dispatcher:
                count = await service.recover(
                    session, dispatcher, endpoint_id, window.since, window.until
                )
            progress.update(task, completed=count, total=count)
            return count

    count = run(settings, work)
    if count:
        note(
            f"[green]re-queued {count} failed deliver{'ies' if count != 1 else 'y'}[/green] "
            f"of {endpoint_id}: {dispatcher.summary()}"
        )
    else:
        note(f"no failed deliveries of {endpoint_id} in that time: nothing to do")
    if as_json:
        print_json({"requeued": count})
    else:
        print_record(
            {"endpoint_id": endpoint_id, "requeued": count},
            {"endpoint_id": "endpoint", "requeued": "re-queued"},
        )


async def _failed_between(
    session: AsyncSession, endpoint_id: str, since: datetime, until: datetime | None
) -> int:
    """How many deliveries recover will take: only the size of the progress bar."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from gateway.store.models import Delivery, DeliveryStatus
    from gateway.timeutil import as_utc

    query = (
        select(func.count())
        .select_from(Delivery)
        .where(
            col(Delivery.endpoint_id) == endpoint_id,
            col(Delivery.status) == DeliveryStatus.FAILED,
            col(Delivery.created_at) >= as_utc(since),
        )
    )
    if until is not None:
        query = query.where(col(Delivery.created_at) < as_utc(until))
    return await session.scalar(query) or 0
