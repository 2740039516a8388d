"""`gateway events publish|publish-batch|list`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    Cursor,
    JsonFlag,
    Limit,
    fail,
    input_error,
    load_settings,
    note,
)
from gateway.commands.dispatching import CommandDispatcher
from gateway.commands.output import dump, print_json, print_page, print_record, print_table
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Publish and list events (directly in the database).", no_args_is_help=True)

COLUMNS = {
    "id": "id",
    "type": "type",
    "tenant_id": "tenant",
    "source_id": "source",
    "created_at": "created",
}
OPTIONS = {
    "type": "TYPE",
    "data": "--data",
    "tenant_id": "--tenant",
    "previous_data": "--previous-data",
    "ordering_key": "--ordering-key",
}

Tenant = Annotated[str | None, typer.Option(help="The tenant the event belongs to.")]


@app.command("publish")
def events_publish(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="The event type.")],
    data: Annotated[str, typer.Option(help="The payload: a JSON object.")],
    tenant: Tenant = None,
    previous_data: Annotated[
        str | None,
        typer.Option(
            help="For an update event, the data before the change (a JSON object), "
            "delivered beside the data as previous_data."
        ),
    ] = None,
    ordering_key: Annotated[
        str | None,
        typer.Option(
            help="Ordered endpoints receive the events of one key one at a time, in "
            "publish order (see docs/ordering.md)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish an event to every endpoint subscribed to TYPE (of the tenant, if given)."""
    from pydantic import ValidationError

    from gateway.outbound.fanout import publish
    from gateway.outbound.reads import published_out
    from gateway.outbound.schemas import EventCreate, EventPublished

    settings = load_settings()
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        fail(f"--data is not valid JSON: {exc}", EXIT_USAGE)
    try:
        before = None if previous_data is None else json.loads(previous_data)
    except ValueError as exc:
        fail(f"--previous-data is not valid JSON: {exc}", EXIT_USAGE)
    try:
        body = EventCreate(
            type=event_type,
            data=parsed,
            tenant_id=tenant,
            previous_data=before,
            ordering_key=ordering_key,
        )
    except ValidationError as exc:
        input_error(exc, OPTIONS)
    dispatcher = CommandDispatcher(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        async with dispatcher:
            published = await publish(
                session,
                dispatcher,
                event_type=body.type,
                data=body.data,
                tenant_id=body.tenant_id,
                schema_check=settings.event_types,
                previous_data=body.previous_data,
                ordering_key=body.ordering_key,
            )
        return dump(EventPublished, published_out(published))

    event = run(settings, work, OPTIONS)
    count = event["deliveries"]
    if count:
        note(
            f"[green]published {event['id']}[/green] to {count} "
            f"endpoint{'s' if count != 1 else ''}; {dispatcher.summary()}"
        )
    else:
        note(
            f"[green]published {event['id']}[/green]; no enabled endpoint subscribes to it, "
            "so nothing is delivered"
        )
    if as_json:
        print_json(event)
    else:
        print_record(event, {**COLUMNS, "deliveries": "deliveries", "data": "data"})


@app.command("publish-batch")
def events_publish_batch(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help='A JSON file: {"events": [...]} as POST /v1/events/batch takes it, or the '
            "list alone; - reads standard input.",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Publish up to 500 events in one transaction: all of them, or none (the first
    refused one is named by its index)."""
    from pydantic import ValidationError

    from gateway.outbound.fanout import Publish, publish_all
    from gateway.outbound.reads import published_out
    from gateway.outbound.schemas import EventBatch, EventBatchItemPublished

    settings = load_settings()
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"FILE cannot be read: {exc}", EXIT_USAGE)
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        fail(f"FILE is not valid JSON: {exc}", EXIT_USAGE)
    try:
        batch = EventBatch.model_validate(
            {"events": parsed} if isinstance(parsed, list) else parsed
        )
    except ValidationError as exc:
        input_error(exc)
    dispatcher = CommandDispatcher(settings)
    items = [
        Publish(
            event.type,
            event.data,
            tenant_id=event.tenant_id,
            endpoint_ids=event.endpoint_ids,
            # The CLI's own namespace: the API's keys are its callers' (see api/events.py).
            idempotency_key=(
                f"cli:{event.idempotency_key}" if event.idempotency_key is not None else None
            ),
            schema_check=settings.event_types,
            previous_data=event.previous_data,
            ordering_key=event.ordering_key,
        )
        for event in batch.events
    ]

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        async with dispatcher:
            published = await publish_all(session, dispatcher, items)
        return [
            dump(EventBatchItemPublished, {**published_out(p), "created": p.created})
            for p in published
        ]

    events = run(settings, work)
    created = sum(e["created"] for e in events)
    note(
        f"[green]published {created} event{'s' if created != 1 else ''}[/green]"
        + (f", {len(events) - created} already published" if created < len(events) else "")
        + f"; {dispatcher.summary()}"
    )
    if as_json:
        print_json({"events": events})
    else:
        print_table(events, {**COLUMNS, "deliveries": "deliveries", "created": "new"}, "events")


@app.command("list")
def events_list(
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only events of this type.")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    """List events, newest first."""
    from gateway.outbound.reads import list_events
    from gateway.outbound.schemas import EventOut

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_events(
            session, event_type=event_type, tenant_id=tenant, limit=limit, cursor=cursor
        )
        return [dump(EventOut, e) for e in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(rows, next_cursor, as_json, COLUMNS, "events")
