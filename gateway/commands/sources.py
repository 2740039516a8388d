"""`gateway sources list|show|create|update|enable|disable|delete`.

A source's secret is read, never printed: from `--secret`, else from stdin (a prompt
in a terminal), so that it need not appear in the shell's history.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import (
    EXIT_USAGE,
    Cursor,
    JsonFlag,
    Limit,
    Yes,
    confirm_deletion,
    fail,
    input_error,
    load_box,
    load_settings,
    note,
)
from gateway.commands.output import dump, print_json, print_page, print_record, print_table
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(
    help="Manage sources, the inbound URLs given to providers (directly in the database).",
    no_args_is_help=True,
)

COLUMNS = {
    "id": "id",
    "name": "name",
    "provider": "provider",
    "ingest_path": "ingest path",
    "state": "state",
    "created_at": "created",
}
DETAIL = {
    "id": "id",
    "name": "name",
    "provider": "provider",
    "ingest_path": "ingest path",
    "options": "options",
    "tolerance_seconds": "tolerance (s)",
    "rate_limit": "rate limit",
    "deduplicate_body": "deduplicate body",
    "validate": "validate data",
    "disabled": "disabled",
    "created_at": "created",
    "updated_at": "updated",
}
RECEIVED = {
    "id": "event",
    "type": "type",
    "verification": "verified by",
    "created_at": "received",
}
# The services' field names, as the user typed them.
OPTIONS = {
    "name": "NAME",
    "provider": "--provider",
    "secret": "--secret",
    "options": "--options",
    "tolerance_seconds": "--tolerance-seconds",
    "rate_limit": "--rate-limit",
    "deduplicate_body": "--deduplicate-body",
}
UPDATE_OPTIONS = {**OPTIONS, "name": "--name"}
# The providers of `gateway.inbound.schemas.Provider`, written out so that `--help`
# does not import the schemas (tests/cli/test_cli_sources.py checks they agree).
PROVIDERS = "stripe, github, gitlab, shopify, slack, standard or hmac"


class Dedup(StrEnum):
    yes = "yes"
    no = "no"
    default = "default"  # the provider's default


SourceId = Annotated[str, typer.Argument(help="The source's id (src_...).")]
SecretOption = Annotated[
    str | None,
    typer.Option(
        help="The signing secret the provider shows; '-' or left out: read from stdin "
        "(asked for in a terminal), which keeps it out of the shell's history.",
        show_default=False,
    ),
]
OptionsOption = Annotated[
    str | None,
    typer.Option(
        "--options",
        help='For provider hmac (required there): a JSON object, e.g. \'{"header": '
        '"X-Signature", "prefix": "sha256="}\'; the API documents its keys.',
    ),
]
ToleranceOption = Annotated[
    int | None,
    typer.Option(help="How far a signed timestamp may be from our clock, in seconds."),
]
RateOption = Annotated[
    str | None,
    typer.Option(
        metavar="N|default",
        help="Requests per second it accepts at most; 'default': GATEWAY_INBOUND_RATE_LIMIT.",
    ),
]
DedupOption = Annotated[
    Dedup | None,
    typer.Option(
        help="Also refuse a body already received as a duplicate; 'default': the "
        "provider's choice (yes for github and gitlab)."
    ),
]


@app.command("list")
def sources_list(as_json: JsonFlag = False, limit: Limit = 50, cursor: Cursor = None) -> None:
    """List sources, newest first."""
    from gateway.inbound.schemas import SourceOut
    from gateway.inbound.sources import list_sources

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_sources(session, limit, cursor)
        return [dump(SourceOut, s) for s in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(
        rows,
        next_cursor,
        as_json,
        COLUMNS,
        "sources",
        shown=lambda row: {**row, "state": "disabled" if row["disabled"] else "enabled"},
    )


@app.command("show")
def sources_show(
    source_id: SourceId,
    recent: Annotated[
        int,
        typer.Option(min=0, max=250, help="How many of its latest events to show (0: none)."),
    ] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Show a source's settings and the latest events it received.

    Each event says how it was verified; requests that failed verification are not
    stored (gateway_inbound_verification_failures_total counts them).
    """
    from gateway.inbound.schemas import SourceOut
    from gateway.inbound.sources import get_source, source_out
    from gateway.outbound.reads import get_event_detail, list_events

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        source = dump(SourceOut, source_out(await get_source(session, source_id)))
        received: list[dict[str, Any]] = []
        if recent:
            events = await list_events(session, source_id=source_id, limit=recent)
            for event in events.data:
                # The API shows how an event was verified with the event itself.
                detail = await get_event_detail(session, str(event["id"]))
                received.append(_received(detail))
        return source, received

    source, received = run(settings, work)
    if as_json:
        print_json({**source, "recent_events": received})
        return
    print_record(source, DETAIL)
    note(
        f"[dim]providers post to this gateway's public URL followed by {source['ingest_path']}"
        "[/dim]"
    )
    if recent:
        print_table(received, RECEIVED, "events received yet")


@app.command("create")
def sources_create(
    name: Annotated[str, typer.Argument(help="A name for people.")],
    provider: Annotated[
        str,
        typer.Option(help=f"Whose signature scheme requests are verified with: {PROVIDERS}."),
    ],
    secret: SecretOption = None,
    options: OptionsOption = None,
    tolerance_seconds: ToleranceOption = None,
    rate_limit: RateOption = None,
    deduplicate_body: DedupOption = None,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Create it disabled: its URL answers 403.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Register a provider's webhooks; prints the source and the path to give the provider.

    The secret is stored encrypted and not printed back.
    """
    from pydantic import ValidationError

    from gateway.inbound import sources as service
    from gateway.inbound.schemas import SourceCreate, SourceOut

    settings = load_settings()
    fields: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "secret": _read_secret(secret),
        "disabled": disabled,
        **_settings_given(options, tolerance_seconds, rate_limit, deduplicate_body),
    }
    try:
        body = SourceCreate.model_validate(fields)
    except ValidationError as exc:
        input_error(exc, OPTIONS)
    box = load_box(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        source = await service.create_source(session, body, box, settings)
        await session.commit()
        return dump(SourceOut, service.source_out(source))

    source = run(settings, work, OPTIONS)
    note(
        f"[green]created {source['id']}[/green]; give the provider this gateway's public URL "
        f"followed by {source['ingest_path']}"
    )
    _print_source(source, as_json)


@app.command("update")
def sources_update(
    source_id: SourceId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            help="A new signing secret; '-': read it from stdin (asked for in a terminal).",
            show_default=False,
        ),
    ] = None,
    options: OptionsOption = None,
    tolerance_seconds: ToleranceOption = None,
    rate_limit: RateOption = None,
    deduplicate_body: DedupOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a source's settings (the provider cannot change); the others stay."""
    changes = _settings_given(options, tolerance_seconds, rate_limit, deduplicate_body)
    if name is not None:
        changes["name"] = name
    if secret is not None:
        changes["secret"] = _read_secret(secret)
    if not changes:
        fail(
            "nothing to change: give --name, --secret, --options, --tolerance-seconds, "
            "--rate-limit or --deduplicate-body",
            EXIT_USAGE,
        )
    _update(source_id, changes, "updated", as_json)


@app.command("disable")
def sources_disable(source_id: SourceId, as_json: JsonFlag = False) -> None:
    """Refuse requests at the source's URL (403) until it is enabled again."""
    _update(source_id, {"disabled": True}, "disabled", as_json)


@app.command("enable")
def sources_enable(source_id: SourceId, as_json: JsonFlag = False) -> None:
    """Accept requests at the source's URL again."""
    _update(source_id, {"disabled": False}, "enabled", as_json)


@app.command("delete")
def sources_delete(
    source_id: SourceId,
    yes: Yes = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a source: its URL stops accepting requests; the events it received stay."""
    from gateway.inbound import sources as service
    from gateway.inbound.schemas import SourceOut

    settings = load_settings()

    async def read(session: AsyncSession) -> dict[str, Any]:
        return dump(SourceOut, service.source_out(await service.get_source(session, source_id)))

    source = run(settings, read)
    if not yes:
        confirm_deletion(
            f"Delete source {source_id} ({source['name']}, {source['provider']})? "
            f"Its URL {source['ingest_path']} then answers 404"
        )

    async def delete(session: AsyncSession) -> None:
        await service.delete_source(session, source_id)
        await session.commit()

    run(settings, delete)
    note(f"[green]deleted {source_id}[/green]; {_applies()}")
    if as_json:
        print_json(source)


def _update(source_id: str, changes: dict[str, Any], done: str, as_json: bool) -> None:
    from pydantic import ValidationError

    from gateway.inbound import sources as service
    from gateway.inbound.schemas import SourceOut, SourceUpdate

    settings = load_settings()
    try:
        body = SourceUpdate.model_validate(changes)
    except ValidationError as exc:
        input_error(exc, UPDATE_OPTIONS)
    box = load_box(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        source = await service.update_source(session, source_id, body, box, settings)
        await session.commit()
        return dump(SourceOut, service.source_out(source))

    source = run(settings, work, UPDATE_OPTIONS)
    note(f"[green]{done} {source_id}[/green]; {_applies()}")
    _print_source(source, as_json)


def _settings_given(
    options: str | None,
    tolerance_seconds: int | None,
    rate_limit: str | None,
    deduplicate_body: Dedup | None,
) -> dict[str, Any]:
    """The settings options the user gave, as the API's fields."""
    given: dict[str, Any] = {}
    if options is not None:
        try:
            given["options"] = json.loads(options)
        except ValueError as exc:
            fail(f"--options is not valid JSON: {exc}", EXIT_USAGE)
    if tolerance_seconds is not None:
        given["tolerance_seconds"] = tolerance_seconds
    if rate_limit is not None:
        given["rate_limit"] = None if rate_limit.strip().lower() == "default" else rate_limit
    if deduplicate_body is not None:
        given["deduplicate_body"] = {Dedup.yes: True, Dedup.no: False}.get(deduplicate_body)
    return given


def _read_secret(given: str | None) -> str:
    """`--secret`, or for '-' or none a line of stdin (a hidden prompt in a terminal)."""
    if given is not None and given != "-":
        return given
    if sys.stdin.isatty():
        secret: str = typer.prompt("Signing secret", hide_input=True, err=True)
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        fail("--secret: give the provider's signing secret, with --secret or on stdin", EXIT_USAGE)
    return secret


def _received(event: dict[str, Any]) -> dict[str, Any]:
    """An event as `sources show` lists it: what it was and how it was verified."""
    from gateway.outbound.schemas import EventOut

    return {**dump(EventOut, event), "verification": event.get("verification")}


def _applies() -> str:
    from gateway.inbound.sources import SOURCE_CACHE_SECONDS

    return f"running gateway processes apply it within {SOURCE_CACHE_SECONDS:g} s"


def _print_source(source: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(source)
    else:
        print_record(source, DETAIL)
