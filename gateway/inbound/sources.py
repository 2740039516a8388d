"""Sources: the inbound URLs users give to providers, with the secret each verifies with."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crypto import SecretBox
from gateway.errors import Invalid
from gateway.ids import new_id
from gateway.inbound.schemas import (
    SourceCreate,
    SourceUpdate,
    check_source_options,
    check_source_secret,
)
from gateway.inbound.verifiers import VERIFIERS
from gateway.settings import Settings
from gateway.store.models import Source
from gateway.store.queries import Page, get_or_404, page
from gateway.timeutil import utcnow
from gateway.transform import checked as checked_transformation

# How long a process trusts what it read of a source (`ingest.InboundContext`). Changes
# made through that process apply at once; through another (or the CLI), within this.
SOURCE_CACHE_SECONDS = 2.0


def ingest_path(source: Source) -> str:
    return f"/in/{source.id}"


def deduplicates_body(source: Source) -> bool:
    """The source's own choice, else its provider's default (`verifiers.py` says why)."""
    if source.deduplicate_body is not None:
        return source.deduplicate_body
    return VERIFIERS[source.provider].deduplicate_body


def source_out(source: Source) -> dict[str, object]:
    """The source as the API and the CLI show it: never its secret."""
    return {
        **source.model_dump(exclude={"secret"}),
        "ingest_path": ingest_path(source),
        "deduplicate_body": deduplicates_body(source),
    }


async def get_source(session: AsyncSession, source_id: str) -> Source:
    return await get_or_404(session, Source, source_id, "source")


async def list_sources(
    session: AsyncSession, limit: int = 50, cursor: str | None = None
) -> Page[dict[str, object]]:
    """Sources, newest first, as `source_out` shows them."""
    return (await page(session, select(Source), Source.id, limit, cursor)).map(source_out)


async def delete_source(session: AsyncSession, source_id: str) -> None:
    """Stop accepting at its URL (once committed); the events it received stay."""
    await session.delete(await get_source(session, source_id))


SECRET = "source.secret"  # what a sealed source secret is bound to


async def create_source(
    session: AsyncSession, body: SourceCreate, box: SecretBox, settings: Settings
) -> Source:
    await checked_transformation(body.transformation, settings.transform_timeout_ms)
    now = utcnow()
    source = Source(
        id=new_id("src"),
        name=body.name,
        provider=body.provider,
        secret=box.seal(body.secret, SECRET),
        options=body.options or {},
        tolerance_seconds=body.tolerance_seconds,
        rate_limit=body.rate_limit,
        deduplicate_body=body.deduplicate_body,
        validate_data=body.validate_data,
        disabled=body.disabled,
        transformation=body.transformation,
        created_at=now,
        updated_at=now,
    )
    session.add(source)
    return source


async def update_source(
    session: AsyncSession, source_id: str, body: SourceUpdate, box: SecretBox, settings: Settings
) -> Source:
    source = await get_source(session, source_id)
    changes = body.model_dump(exclude_unset=True)
    await checked_transformation(changes.get("transformation"), settings.transform_timeout_ms)
    for field, value in changes.items():
        if value is None and field not in (
            "options",
            "rate_limit",
            "deduplicate_body",
            "transformation",
        ):
            name = "validate" if field == "validate_data" else field  # as the API calls it
            raise Invalid(f"{name} cannot be null", loc=("body", name))
    # Options and secret are checked against the provider, which a PATCH cannot change.
    if "options" in changes:
        try:
            changes["options"] = check_source_options(source.provider, changes["options"])
        except ValueError as exc:
            raise Invalid(str(exc), loc=("body", "options")) from None
    if "secret" in changes:
        try:
            check_source_secret(source.provider, changes["secret"])
        except ValueError as exc:
            raise Invalid(str(exc), loc=("body", "secret")) from None
        changes["secret"] = box.seal(changes["secret"], SECRET)
    for field, value in changes.items():
        setattr(source, field, value)
    source.updated_at = utcnow()
    return source
