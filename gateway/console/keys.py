"""API keys: the list (with where the bootstrap key comes from), creating one (shown once,
on the answer to the form, never in a URL), revoking one after a confirmation. The
same services as `/v1/api-keys` and `gateway keys`; admins only, as there."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from gateway.api.deps import KeysDep, SessionDep
from gateway.apikey import bootstrap_key_line, bootstrap_key_origin
from gateway.auth import ApiKeyCreate, create_key, get_key, list_keys, revoke_key
from gateway.console.web import CheckedFormDep, SignedInDep, redirect, render, templates
from gateway.timeutil import rfc3339

router = APIRouter(prefix="/console", include_in_schema=False)
templates.env.filters.setdefault("rfc3339", rfc3339)

PAGE_SIZE = 50
_CURSOR = re.compile(r"^[A-Za-z0-9_]{1,64}$")
FIELDS = ("name", "tenant_id", "rate_limit")


def _form_errors(exc: ValidationError) -> dict[str, str]:
    """The model's messages by field, as the API gives them."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "name"
        errors.setdefault(name, error["msg"])
    return errors


async def _list_page(
    request: Request, session: SessionDep, cursor: str, **context: object
) -> dict[str, object]:
    found = await list_keys(session, PAGE_SIZE, cursor if _CURSOR.match(cursor) else None)
    settings = request.app.state.settings
    return {
        "keys": found.data,
        "next_cursor": found.next_cursor,
        "first_page": not cursor,
        "bootstrap": bootstrap_key_line(settings, bootstrap_key_origin(settings)),
        "values": dict.fromkeys(FIELDS, ""),
        "errors": {},
        **context,
    }


@router.get("/keys", response_class=HTMLResponse)
async def keys_list(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    cursor: Annotated[str, Query(max_length=64)] = "",
    revoked: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    user.principal.require_admin()
    context = await _list_page(request, session, cursor, revoked=revoked)
    return render(request, "keys.html", context, signed_in=user)


@router.post("/keys", response_class=HTMLResponse)
async def keys_create(
    request: Request, user: SignedInDep, session: SessionDep, form: CheckedFormDep
) -> Response:
    user.principal.require_admin()
    values = {name: form.get(name, "").strip() for name in FIELDS}
    try:
        body = ApiKeyCreate.model_validate(
            {
                "name": values["name"],
                "tenant_id": values["tenant_id"] or None,
                "rate_limit": values["rate_limit"] or None,
            }
        )
    except ValidationError as exc:
        context = await _list_page(request, session, "", values=values, errors=_form_errors(exc))
        return render(request, "keys.html", context, status_code=422, signed_in=user)
    row, key = await create_key(session, body.name, body.tenant_id, body.rate_limit)
    await session.commit()
    # The answer to the POST itself: the key is in no URL, no redirect, no later page.
    return render(request, "key_created.html", {"key_row": row, "key": key}, signed_in=user)


@router.get("/keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_confirm(
    request: Request, key_id: str, user: SignedInDep, session: SessionDep
) -> Response:
    user.principal.require_admin()
    row = await get_key(session, key_id)
    return render(
        request,
        "key_revoke.html",
        {"key_row": row, "own": user.principal.key_id == row.id},
        signed_in=user,
    )


@router.post("/keys/{key_id}/revoke")
async def revoke(
    key_id: str, user: SignedInDep, session: SessionDep, keys: KeysDep, _form: CheckedFormDep
) -> Response:
    user.principal.require_admin()
    await revoke_key(session, key_id)
    keys.forget()
    # Revoking the key signed in with ends this session too: the list then asks to sign in.
    return redirect(f"/console/keys?revoked={key_id}")
