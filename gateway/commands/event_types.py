"""`gateway event-types list|import`: the event-type catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    JsonFlag,
    Limit,
    fail,
    input_error,
    load_settings,
    note,
)
from gateway.commands.output import dump, print_json, print_page
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(
    help="The event-type catalogue: each type's schema and examples (directly in the database).",
    no_args_is_help=True,
)

COLUMNS = {
    "name": "name",
    "group": "group",
    "state": "state",
    "checked": "schema",
    "description": "description",
}


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    state = "archived" if row["archived"] else "deprecated" if row["deprecated"] else "active"
    return {**row, "state": state, "checked": "yes" if row["schema"] is not None else "no"}


@app.command("list")
def event_types_list(
    archived: Annotated[bool, typer.Option("--archived", help="Archived types too.")] = False,
    as_json: JsonFlag = False,
    limit: Limit = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after this name: the previous page's next_cursor.")
    ] = None,
) -> None:
    """List the catalogue's types, by name."""
    from gateway.outbound.catalogue import list_event_types
    from gateway.outbound.catalogue_schemas import EventTypeOut

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_event_types(session, limit, cursor, include_archived=archived)
        return [dump(EventTypeOut, t) for t in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(rows, next_cursor, as_json, COLUMNS, "event types", shown=_shown)


@app.command("import")
def event_types_import(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="An OpenAPI 3.1 document, as JSON."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Create or update a type from each entry of an OpenAPI 3.1 document's `webhooks`
    (as POST /v1/event-types/import does); all or nothing."""
    from pydantic import ValidationError

    from gateway.outbound.catalogue import import_openapi
    from gateway.outbound.catalogue_schemas import OpenAPIDocument

    settings = load_settings()
    try:
        parsed = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{file} is not a JSON document: {exc}", EXIT_USAGE)
    try:
        document = OpenAPIDocument.model_validate(parsed)
    except ValidationError as exc:
        input_error(exc)

    async def work(session: AsyncSession) -> dict[str, list[str]]:
        result = await import_openapi(session, document.model_dump())
        await session.commit()
        return result

    result = run(settings, work)
    note(
        f"[green]imported {len(result['created']) + len(result['updated'])} event types[/green]"
        f" ({len(result['created'])} created, {len(result['updated'])} updated)"
    )
    if as_json:
        print_json(result)
    else:
        for name in result["created"]:
            typer.echo(f"created {name}")
        for name in result["updated"]:
            typer.echo(f"updated {name}")
