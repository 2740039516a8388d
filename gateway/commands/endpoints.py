"""`gateway endpoints list|create|disable|enable|delete`."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
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
from gateway.commands.output import dump, print_json, print_page, print_record
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Manage endpoints (directly in the database).", no_args_is_help=True)

COLUMNS = {
    "id": "id",
    "url": "url",
    "tenant_id": "tenant",
    "event_types": "event types",
    "state": "state",
    "created_at": "created",
}
DETAIL = {
    "id": "id",
    "kind": "kind",
    "url": "url",
    "tenant_id": "tenant",
    "description": "description",
    "event_types": "event types",
    "source_ids": "sources",
    "rate_limit": "rate limit",
    "filter": "filter",
    "transformation": "transformation",
    "signature": "signature",
    "retry_policy": "retry policy",
    "contact_email": "contact email",
    "ordered": "ordered",
    "disabled": "disabled",
    "disabled_reason": "why disabled",
    "failing_since": "failing since",
    "warned_percent": "warned (% to disabled)",
    "created_at": "created",
    "updated_at": "updated",
}
# The services' field names, as the user typed them.
OPTIONS = {
    "url": "URL",
    "event_types": "--event-type",
    "tenant_id": "--tenant",
    "description": "--description",
    "source_ids": "--source",
    "filter": "--filter",
    "transformation": "--transformation",
    "signature": "--signature-scheme",
    "retry_policy": "--retry-policy",
    "contact_email": "--contact-email",
    "ordered": "--ordered",
}

EndpointId = Annotated[str, typer.Argument(help="The endpoint's id (ep_...).")]


class Ordered(StrEnum):
    """`--ordered`: as the API's `ordered` true, or "strict"."""

    true = "true"
    strict = "strict"


@app.command("list")
def endpoints_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's endpoints.")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    """List endpoints, newest first."""
    from gateway.outbound.reads import list_endpoints
    from gateway.outbound.schemas import EndpointOut

    settings = load_settings()
    box = load_box(settings)

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_endpoints(session, box, tenant_id=tenant, limit=limit, cursor=cursor)
        return [dump(EndpointOut, e) for e in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(
        rows,
        next_cursor,
        as_json,
        COLUMNS,
        "endpoints",
        # A stream endpoint has no URL: it is read by `gateway listen`.
        shown=lambda row: {**row, "state": _state(row), "url": row["url"] or "(stream)"},
    )


@app.command("create")
def endpoints_create(
    url: Annotated[str, typer.Argument(help="Where to POST events (http or https).")],
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--event-type",
            help="Subscribe to this type, 'prefix.*' or '*'; repeat for more. None: every type.",
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="The tenant the endpoint belongs to.")] = None,
    description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Take only the events this inbound source receives; repeat for more.",
        ),
    ] = None,
    published_only: Annotated[
        bool,
        typer.Option(
            "--published-only",
            help="Take only events published through the API, none received from providers.",
        ),
    ] = False,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="A CEL expression over the event; only events it is true for are delivered "
            '(e.g. \'data.amount > 1000 && data.currency in ["EUR", "USD"]\').',
        ),
    ] = None,
    transformation: Annotated[
        str | None,
        typer.Option(
            "--transformation",
            metavar="FILE",
            help="A file of JavaScript defining handler(webhook), run before each attempt "
            "('-': standard input); see docs/transformations.md.",
        ),
    ] = None,
    signature_scheme: Annotated[
        str | None,
        typer.Option(
            "--signature-scheme",
            help="How deliveries are signed: standard (the default), hmac (X-Webhook-Signature: "
            "sha256=<hex>, default options), github or stripe; see docs/signatures.md.",
        ),
    ] = None,
    retry_policy: Annotated[
        str | None,
        typer.Option(
            "--retry-policy",
            metavar="JSON",
            help='Its own retries and disabling, e.g. \'{"schedule": [10, 60], "final_statuses": '
            '[404], "disable_after_failures": 50}\'; see docs/receiving.md.',
        ),
    ] = None,
    contact_email: Annotated[
        str | None,
        typer.Option(
            "--contact-email", help="Who is emailed when it is failing (GATEWAY_SMTP_URL)."
        ),
    ] = None,
    ordered: Annotated[
        Ordered | None,
        typer.Option(
            help="Deliver each ordering key's events one at a time, in publish order; "
            "strict: a failed one holds its key until retried or skipped (docs/ordering.md)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Subscribe URL to events; prints the endpoint and its signing secret.

    Without --source or --published-only, the endpoint takes events of every origin."""
    from pydantic import ValidationError

    from gateway.outbound import endpoints as service
    from gateway.outbound.reads import endpoint_out
    from gateway.outbound.schemas import EndpointCreate, EndpointCreated

    settings = load_settings()
    try:
        if source and published_only:
            fail("--source and --published-only contradict each other: choose one", EXIT_USAGE)
        body = EndpointCreate(
            url=url,
            event_types=event_type or None,
            tenant_id=tenant,
            description=description,
            source_ids=[] if published_only else source or None,
            filter=filter_,
            transformation=_code(transformation),
            signature=None if signature_scheme is None else {"scheme": signature_scheme},
            retry_policy=_json_option(retry_policy, "--retry-policy"),
            contact_email=contact_email,
            ordered="strict" if ordered == Ordered.strict else ordered is not None,
        )
    except ValidationError as exc:
        input_error(exc, OPTIONS)
    box = load_box(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        endpoint = await service.create_endpoint(session, body, settings, box)
        await session.commit()
        return dump(EndpointCreated, endpoint_out(endpoint, box, with_secret=True))

    endpoint = run(settings, work, OPTIONS)
    note(
        f"[green]created {endpoint['id']}[/green]; receivers verify its signatures with "
        f"the secret below (GET /v1/endpoints/{endpoint['id']}/secret shows it again)"
    )
    if as_json:
        print_json(endpoint)
    else:
        print_record(endpoint, {**DETAIL, "secret": "secret"})


def _json_option(text: str | None, option: str) -> Any:
    """An option's JSON text, parsed; a usage error naming the option when it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"{option}: not JSON ({exc})", EXIT_USAGE)


def _code(path: str | None) -> str | None:
    """The JavaScript in the file (or standard input) an option names."""
    if path is None:
        return None
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--transformation: cannot read {path}: {exc}", EXIT_USAGE)


@app.command("disable")
def endpoints_disable(endpoint_id: EndpointId, as_json: JsonFlag = False) -> None:
    """Stop delivering to an endpoint.

    New events skip it; deliveries already due fail without a request. After
    `endpoints enable`, `gateway recover` sends those again.
    """
    _set_disabled(endpoint_id, True, as_json)


@app.command("enable")
def endpoints_enable(endpoint_id: EndpointId, as_json: JsonFlag = False) -> None:
    """Deliver to an endpoint again, with a clean bill of health."""
    _set_disabled(endpoint_id, False, as_json)


@app.command("delete")
def endpoints_delete(endpoint_id: EndpointId, yes: Yes = False, as_json: JsonFlag = False) -> None:
    """Delete an endpoint with its deliveries and their attempt logs (asks first)."""
    from gateway.outbound import endpoints as service
    from gateway.outbound.reads import endpoint_out
    from gateway.outbound.schemas import EndpointOut

    settings = load_settings()
    box = load_box(settings)

    async def read(session: AsyncSession) -> dict[str, Any]:
        endpoint = await service.get_endpoint(session, endpoint_id)
        return dump(EndpointOut, endpoint_out(endpoint, box))

    # Read, ask, then delete in a session of its own: no transaction waits on a person.
    endpoint = run(settings, read)
    if not yes:
        confirm_deletion(
            f"Delete endpoint {endpoint_id} ({endpoint['url']}) with its deliveries and "
            "their attempt logs?"
        )

    async def delete(session: AsyncSession) -> None:
        await service.delete_endpoint(session, endpoint_id)
        await session.commit()

    run(settings, delete)
    note(f"[green]deleted {endpoint_id}[/green] with its deliveries")
    if as_json:
        print_json(endpoint)


def _state(endpoint: dict[str, Any]) -> str:
    if not endpoint["disabled"]:
        return "failing" if endpoint["failing_since"] else "enabled"
    reason = endpoint["disabled_reason"]
    return f"disabled ({reason})" if reason else "disabled"


def _set_disabled(endpoint_id: str, disabled: bool, as_json: bool) -> None:
    from gateway.outbound import endpoints as service
    from gateway.outbound.reads import endpoint_out
    from gateway.outbound.schemas import EndpointOut, EndpointUpdate

    settings = load_settings()
    box = load_box(settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        endpoint = await service.update_endpoint(
            session, endpoint_id, EndpointUpdate(disabled=disabled), settings, box
        )
        await session.commit()
        return dump(EndpointOut, endpoint_out(endpoint, box))

    endpoint = run(settings, work)
    note(f"[green]{'disabled' if disabled else 'enabled'} {endpoint_id}[/green]")
    if as_json:
        print_json(endpoint)
    else:
        print_record(endpoint, DETAIL)
