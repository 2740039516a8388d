"""The event-type catalogue: what each type of event holds, as a JSON Schema with
examples. Publishing checks data against it (`dataschema.py`); endpoints may not
subscribe to an archived type; the API's `/docs`, the console and the tenant portal
show it.

Types are archived, never deleted: events already sent keep their type's description.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.errors import Conflict, Invalid, NotFound
from gateway.outbound import dataschema
from gateway.outbound.catalogue_schemas import EventTypeCreate, EventTypeUpdate
from gateway.outbound.webhooks_import import ImportedType, webhook_types
from gateway.store.models import EventType
from gateway.store.queries import Page
from gateway.timeutil import utcnow
from gateway.validation import EVENT_TYPE_PATTERN

_NAME = re.compile(EVENT_TYPE_PATTERN)


def group_of(name: str) -> str | None:
    """The part before the first dot: `invoice` for `invoice.paid`."""
    group, dot, _ = name.partition(".")
    return group if dot and group else None


def event_type_out(row: EventType) -> dict[str, Any]:
    """The type as the API, the console and the CLI show it."""
    return {
        "name": row.name,
        "group": group_of(row.name),
        "description": row.description,
        "schema": row.data_schema,
        "examples": row.examples,
        "deprecated": row.deprecated,
        "archived": row.archived_at is not None,
        "archived_at": row.archived_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _checked(
    schema: dict[str, Any] | None, examples: list[Any], where: tuple[str | int, ...] = ("body",)
) -> None:
    """The schema compiles and every example meets it; Invalid naming what does not."""
    if schema is None:
        return
    try:
        validator = dataschema.compile_schema(schema)
    except ValueError as exc:
        raise Invalid(str(exc), loc=(*where, "schema")) from None
    for n, example in enumerate(examples):
        problem = dataschema.first_problem(validator, example)
        if problem is not None:
            raise Invalid(
                f"example {n} does not meet the schema: {problem.sentence(f'examples[{n}]')}",
                loc=(*where, "examples", n, *problem.path),
            )


async def get_event_type(session: AsyncSession, name: str) -> EventType:
    row = await session.get(EventType, name) if _NAME.match(name) else None
    if row is None:
        raise NotFound(f"event type {name!r} not found")
    return row


async def create_event_type(session: AsyncSession, body: EventTypeCreate) -> EventType:
    _checked(body.data_schema, body.examples)
    existing = await session.get(EventType, body.name)
    if existing is not None:
        state = " (archived: PATCH it with archived false to bring it back)"
        raise Conflict(
            f"event type {body.name!r} already exists{state if existing.archived_at else ''}"
        )
    now = utcnow()
    row = EventType(
        name=body.name,
        description=body.description,
        data_schema=body.data_schema,
        examples=body.examples,
        deprecated=body.deprecated,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row


async def list_event_types(
    session: AsyncSession,
    limit: int = 50,
    cursor: str | None = None,
    include_archived: bool = False,
) -> Page[dict[str, Any]]:
    """By name; the cursor is the last name of the previous page."""
    query = select(EventType).order_by(col(EventType.name)).limit(limit + 1)
    if cursor:
        query = query.where(col(EventType.name) > cursor)
    if not include_archived:
        query = query.where(col(EventType.archived_at).is_(None))
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([event_type_out(r) for r in rows], rows[-1].name if more else None)


async def shown_event_types(session: AsyncSession, limit: int = 1000) -> list[dict[str, Any]]:
    """The types subscribers may choose from (not archived), by name: for `/docs` and the
    tenant portal."""
    return (await list_event_types(session, limit)).data


async def update_event_type(session: AsyncSession, name: str, body: EventTypeUpdate) -> EventType:
    row = await get_event_type(session, name)
    changes = body.model_dump(exclude_unset=True)
    for field in ("deprecated", "archived"):
        if field in changes and changes[field] is None:
            raise Invalid(f"{field} cannot be null", loc=("body", field))
    if "examples" in changes and changes["examples"] is None:
        changes["examples"] = []
    _checked(changes.get("data_schema", row.data_schema), changes.get("examples", row.examples))
    if "archived" in changes:
        archived = changes.pop("archived")
        if archived != (row.archived_at is not None):
            row.archived_at = utcnow() if archived else None
    for field, value in changes.items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    return row


async def archive_event_type(session: AsyncSession, name: str) -> EventType:
    """Hidden from new subscriptions and from the lists; kept for the events sent."""
    row = await get_event_type(session, name)
    if row.archived_at is None:
        row.archived_at = row.updated_at = utcnow()
    return row


async def import_openapi(session: AsyncSession, document: dict[str, Any]) -> dict[str, list[str]]:
    """A type per entry of the document's `webhooks`, created or updated (brought back if
    archived); all or nothing: the first entry that cannot be read is a 422."""
    imported = webhook_types(document)
    for item in imported:
        _checked(item.data_schema, item.examples, ("body", "webhooks", item.name))
    existing = {
        row.name: row
        for row in await session.scalars(
            select(EventType).where(col(EventType.name).in_([i.name for i in imported]))
        )
    }
    created, updated = [], []
    now = utcnow()
    for item in imported:
        row = existing.get(item.name)
        if row is None:
            session.add(_new_row(item, now))
            created.append(item.name)
            continue
        row.description = item.description
        row.data_schema = item.data_schema
        row.examples = item.examples
        row.deprecated = item.deprecated
        row.archived_at = None
        row.updated_at = now
        updated.append(item.name)
    return {"created": created, "updated": updated}


def _new_row(item: ImportedType, now: Any) -> EventType:
    return EventType(
        name=item.name,
        description=item.description,
        data_schema=item.data_schema,
        examples=item.examples,
        deprecated=item.deprecated,
        created_at=now,
        updated_at=now,
    )


async def check_subscribable(session: AsyncSession, event_types: list[str] | None) -> None:
    """An endpoint may not name an archived type (prefixes and `*` are not types)."""
    exact = {t for t in event_types or () if not t.endswith("*")}
    if not exact:
        return
    archived = sorted(
        await session.scalars(
            select(col(EventType.name)).where(
                col(EventType.name).in_(exact), col(EventType.archived_at).is_not(None)
            )
        )
    )
    if archived:
        raise Invalid(
            f"event type{'s' if len(archived) > 1 else ''} {', '.join(archived)} "
            f"{'are' if len(archived) > 1 else 'is'} archived: new subscriptions cannot take "
            "it",
            loc=("body", "event_types"),
        )


async def test_example(session: AsyncSession, name: str) -> dict[str, Any]:
    """The type's first example, for a test send given the type without data."""
    row = await session.get(EventType, name)
    if row is None or row.archived_at is not None:
        raise Invalid(
            f"event type {name!r} is not in the catalogue: send data with it",
            loc=("body", "data"),
        )
    first = next((e for e in row.examples if isinstance(e, dict)), None)
    if first is None:
        raise Invalid(
            f"event type {name!r} has no example (an object) to send: send data with it",
            loc=("body", "data"),
        )
    return first
