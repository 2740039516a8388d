"""`/v1/api-keys`: create (the key is shown once), list, revoke. Admin keys only."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.api.deps import JSON_BODY, IdPath, KeysDep, PagingDep, PrincipalDep, SessionDep
from gateway.api.schemas import Page, error_responses
from gateway.auth import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    create_key,
    list_keys,
    revoke_key,
)

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=error_responses(403))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    dependencies=JSON_BODY,
    responses=error_responses(413, 415),
    response_description="Created; the key is shown in this answer only",
)
async def create_api_key(
    body: ApiKeyCreate, session: SessionDep, principal: PrincipalDep
) -> dict[str, object]:
    """A new key, shown in this answer only; give `tenant_id` to scope it to one tenant."""
    principal.require_admin()
    row, key = await create_key(session, body.name, body.tenant_id, body.rate_limit)
    await session.commit()
    return {**row.model_dump(), "key": key}


@router.get(
    "",
    response_model=Page[ApiKeyOut],
    response_description="A page of API keys, newest first (without the keys)",
)
async def list_api_keys(
    session: SessionDep, principal: PrincipalDep, paging: PagingDep
) -> dict[str, object]:
    principal.require_admin()
    return (await list_keys(session, paging.limit, paging.cursor)).body()


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
    response_description="Revoked (or already was)",
)
async def revoke_api_key(
    key_id: IdPath, session: SessionDep, principal: PrincipalDep, keys: KeysDep
) -> Response:
    """Revoke at once here, and within seconds in every other process."""
    principal.require_admin()
    await revoke_key(session, key_id)
    keys.forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
