"""`gateway keys list|revoke` (`keys create` is in `gateway.cli`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from gateway.commands.common import Cursor, JsonFlag, Limit, load_settings, note, out
from gateway.commands.output import dump, print_json, print_record, print_table
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
    """List API keys, newest first (only a prefix of each key is kept to tell them apart),
    and say whether a bootstrap admin key (GATEWAY_API_KEY or embedded mode's key file),
    which is not in the database, is configured."""
    from gateway.apikey import bootstrap_key_line, bootstrap_key_origin
    from gateway.auth import ApiKeyOut, list_keys

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[list[dict[str, Any]], str | None]:
        found = await list_keys(session, limit, cursor)
        return [dump(ApiKeyOut, row) for row in found.data], found.next_cursor

    rows, next_cursor = run(settings, work)
    origin = bootstrap_key_origin(settings)
    if as_json:
        bootstrap = {"configured": origin is not None, "from": origin}
        print_json({"data": rows, "next_cursor": next_cursor, "bootstrap_key": bootstrap})
        return
    print_table(rows, COLUMNS, "API keys in the database", next_cursor)
    if cursor is None:  # once, with the first page
        out.print(escape(bootstrap_key_line(settings, origin)))


def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), from `keys list`.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key: refused at once here, within seconds by running processes."""
    from gateway.auth import CACHE_SECONDS, ApiKeyOut, revoke_key

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[dict[str, Any], bool]:
        row, already = await revoke_key(session, key_id)
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
