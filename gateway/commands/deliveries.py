"""`gateway deliveries list|retry`."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import Cursor, JsonFlag, Limit, load_settings, note
from gateway.commands.dispatching import CommandDispatcher
from gateway.commands.output import dump, print_json, print_page, print_record
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(
    help="List and retry deliveries (directly in the database).", no_args_is_help=True
)

COLUMNS = {
    "id": "id",
    "event_id": "event",
    "endpoint_id": "endpoint",
    "status": "status",
    "attempt_count": "attempts",
    "last_status_code": "last code",
    "next_attempt_at": "next attempt",
    "created_at": "created",
}


class Status(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


@app.command("list")
def deliveries_list(
    status: Annotated[Status | None, typer.Option(help="Only deliveries in this state.")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Only deliveries to this endpoint id.")
    ] = None,
    event: Annotated[str | None, typer.Option(help="Only deliveries of this event id.")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    """List deliveries, newest first."""
    from gateway.outbound.reads import list_deliveries
    from gateway.outbound.schemas import DeliveryOut

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        # An unknown endpoint or event is an error, not "no deliveries".
        found = await list_deliveries(
            session,
            endpoint_id=endpoint,
            event_id=event,
            status=status.value if status is not None else None,
            limit=limit,
            cursor=cursor,
        )
        return [dump(DeliveryOut, d) for d in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(rows, next_cursor, as_json, COLUMNS, "deliveries")


@app.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id (dlv_...).")],
    as_json: JsonFlag = False,
) -> None:
    """Queue one more attempt now, whatever the delivery's state (a succeeded one is resent)."""
    from gateway.outbound.endpoints import retry_delivery
    from gateway.outbound.schemas import DeliveryOut

    settings = load_settings()
    dispatcher = CommandDispatcher(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        async with dispatcher:
            return dump(DeliveryOut, await retry_delivery(session, dispatcher, delivery_id))

    delivery = run(settings, work)
    note(f"[green]retrying {delivery_id}[/green]: {dispatcher.summary()}")
    if as_json:
        print_json(delivery)
    else:
        print_record(delivery, COLUMNS)
