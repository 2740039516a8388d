"""`gateway keys list|revoke` (`keys create` is in `gateway.cli`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import Cursor, JsonFlag, Limit, load_settings, note
from gateway.commands.output import dump, print_json, print_page, print_record
from gateway.commands.running import run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

COLUMNS = {
    "id": "id",
    "name": "name",
    "key_prefix": "prefix",
    "tenant_id": "tenant",
    "rate_limit": "rate limit",
    "created_at": "created",
    "revoked_at": "revoked",
}


def register(keys: typer.Typer) -> None:
    keys.command("list")(keys_list)
    keys.command("revoke")(keys_revoke)


def keys_list(as_json: JsonFlag = False, limit: Limit = 50, cursor: Cursor = None) -> None:
    """List API keys, newest first (only a prefix of each key is kept to tell them apart)."""
    from gateway.auth import ApiKeyOut, list_keys

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_keys(session, limit, cursor)
        return [dump(ApiKeyOut, row) for row in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    print_page(rows, next_cursor, as_json, COLUMNS, "API keys")


def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), from `keys list`.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key: refused at once here, within seconds by running processes."""
    from gateway.auth import CACHE_SECONDS, ApiKeyOut
    from gateway.store.models import ApiKey
    from gateway.store.queries import get_or_404
    from gateway.timeutil import utcnow

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[dict[str, Any], bool]:
        # As DELETE /v1/api-keys/{id} does it (the API has no service function for it).
        row = await get_or_404(session, ApiKey, key_id, "API key")
        already = row.revoked_at is not None
        if not already:
            row.revoked_at = utcnow()
            await session.commit()
        return dump(ApiKeyOut, row), already

    key, already = run(settings, work)
    if already:
        note(f"{key_id} was already revoked")
    else:
        note(
            f"[green]revoked {key_id}[/green]; running gateway processes refuse it within "
            f"{CACHE_SECONDS:g} s"
        )
    if as_json:
        print_json(key)
    else:
        print_record(key, COLUMNS)
