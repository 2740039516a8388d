"""`gateway deliveries list|show|retry`."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import Cursor, JsonFlag, Limit, load_settings, note
from gateway.commands.dispatching import CommandDispatcher
from gateway.commands.output import dump, print_json, print_page, print_record, print_table
from gateway.commands.running import run

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.queue.dispatch import Dispatcher

app = typer.Typer(
    help="List, show and retry deliveries (directly in the database).", no_args_is_help=True
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
DETAIL = {**COLUMNS, "updated_at": "updated"}
ATTEMPTS = {
    "attempt": "#",
    "started_at": "started",
    "status_code": "status",
    "duration": "duration",
    "response": "response",
    "error": "error",
}
# Of each response body in the table; --json has what was stored.
EXCERPT_CHARS = 120

DeliveryId = Annotated[str, typer.Argument(help="The delivery's id (dlv_...).")]


class Status(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    skipped = "skipped"


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


@app.command("show")
def deliveries_show(delivery_id: DeliveryId, as_json: JsonFlag = False) -> None:
    """Show a delivery and its attempt log, oldest attempt first."""
    from gateway.outbound.reads import get_delivery_with_attempts
    from gateway.outbound.schemas import DeliveryDetail

    settings = load_settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        return dump(DeliveryDetail, await get_delivery_with_attempts(session, delivery_id))

    delivery = run(settings, work)
    if as_json:
        print_json(delivery)
        return
    print_record(delivery, DETAIL)
    print_table([_attempt_row(a) for a in delivery["attempts"]], ATTEMPTS, "attempts yet")


def _attempt_row(attempt: dict[str, Any]) -> dict[str, Any]:
    body = attempt["response_body"]
    if body is not None:
        body = " ".join(body.split())  # one line per attempt
        if len(body) > EXCERPT_CHARS:
            body = body[: EXCERPT_CHARS - 1] + "…"
    return {**attempt, "duration": f"{attempt['duration_ms']} ms", "response": body or None}


@app.command("retry")
def deliveries_retry(delivery_id: DeliveryId, as_json: JsonFlag = False) -> None:
    """Queue one more attempt now, whatever the delivery's state (a succeeded one is resent)."""
    from gateway.outbound.endpoints import retry_delivery

    _change(delivery_id, as_json, retry_delivery, "retrying")


@app.command("skip")
def deliveries_skip(delivery_id: DeliveryId, as_json: JsonFlag = False) -> None:
    """Never send a failed or pending delivery; to an ordered endpoint, the next event of
    its ordering key goes (what a strict endpoint's failed delivery needs)."""
    from gateway.outbound.ordering import skip

    _change(delivery_id, as_json, skip, "skipped")


def _change(
    delivery_id: str,
    as_json: bool,
    change: Callable[[AsyncSession, Dispatcher, str], Awaitable[Any]],
    done: str,
) -> None:
    """Change one delivery through its service function, which may queue work, and show it."""
    from gateway.outbound.schemas import DeliveryOut

    settings = load_settings()
    dispatcher = CommandDispatcher(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        async with dispatcher:
            return dump(DeliveryOut, await change(session, dispatcher, delivery_id))

    delivery = run(settings, work)
    note(f"[green]{done} {delivery_id}[/green]: {dispatcher.summary()}")
    if as_json:
        print_json(delivery)
    else:
        print_record(delivery, COLUMNS)
