"""`/v1/sources`: the inbound URLs given to providers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from gateway.api.deps import (
    JSON_BODY,
    BoxDep,
    IdPath,
    InboundDep,
    PagingDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
)
from gateway.api.schemas import Page, error_responses
from gateway.inbound import sources as service
from gateway.inbound import transforms
from gateway.inbound.refusals import RefusalList, recent_refusals
from gateway.inbound.schemas import (
    SourceCreate,
    SourceCreated,
    SourceOut,
    SourceSecretOut,
    SourceUpdate,
)
from gateway.inbound.sources import source_out
from gateway.outbound.transforms import TransformationTest, TransformationTested


async def _admin_only(principal: PrincipalDep) -> None:
    principal.require_admin()


# Sources belong to the operator, not to a tenant.
router = APIRouter(
    prefix="/v1/sources",
    tags=["sources"],
    dependencies=[Depends(_admin_only)],
    responses=error_responses(403),
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SourceCreated,
    dependencies=JSON_BODY,
    responses=error_responses(413, 415),
    response_description="Registered; give the provider its ingest_path",
)
async def create_source(
    body: SourceCreate, session: SessionDep, box: BoxDep, settings: SettingsDep
) -> dict[str, object]:
    """Register a provider; give it the returned `ingest_path` on this gateway's public URL."""
    source = await service.create_source(session, body, box, settings)
    await session.commit()
    return {**source_out(source), "secret": body.secret}


@router.get(
    "", response_model=Page[SourceOut], response_description="A page of sources, newest first"
)
async def list_sources(session: SessionDep, paging: PagingDep) -> dict[str, object]:
    return (await service.list_sources(session, paging.limit, paging.cursor)).body()


@router.get(
    "/{source_id}",
    response_model=SourceOut,
    responses=error_responses(404),
    response_description="The source",
)
async def get_source(source_id: IdPath, session: SessionDep) -> dict[str, object]:
    return source_out(await service.get_source(session, source_id))


@router.get(
    "/{source_id}/secret",
    response_model=SourceSecretOut,
    responses=error_responses(404),
    response_description="The source's secret",
)
async def get_source_secret(source_id: IdPath, session: SessionDep, box: BoxDep) -> dict[str, str]:
    source = await service.get_source(session, source_id)
    return {"secret": box.open(source.secret, service.SECRET)}


@router.patch(
    "/{source_id}",
    response_model=SourceOut,
    dependencies=JSON_BODY,
    responses=error_responses(404, 413, 415),
    response_description="The source as changed",
)
async def update_source(
    source_id: IdPath,
    body: SourceUpdate,
    session: SessionDep,
    box: BoxDep,
    inbound: InboundDep,
    settings: SettingsDep,
) -> dict[str, object]:
    source = await service.update_source(session, source_id, body, box, settings)
    await session.commit()
    inbound.forget(source_id)
    return source_out(source)


@router.delete(
    "/{source_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
    response_description="Deleted; the events it received stay",
)
async def delete_source(source_id: IdPath, session: SessionDep, inbound: InboundDep) -> Response:
    """Stop accepting at its URL; events it received stay."""
    await service.delete_source(session, source_id)
    await session.commit()
    inbound.forget(source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{source_id}/transformation/test",
    response_model=TransformationTested,
    dependencies=JSON_BODY,
    responses=error_responses(404, 413, 415),
    response_description="What the transformation made of the sample, or its error",
)
async def test_transformation(
    source_id: IdPath, body: TransformationTest, session: SessionDep, settings: SettingsDep
) -> dict[str, object]:
    """Run the source's transformation, or the `code` given, on a sample received event
    (`payload`: its data) and show the event it makes (or the error); nothing is stored."""
    return await transforms.try_on_source(session, source_id, body, settings.transform_timeout_ms)


@router.get(
    "/{source_id}/refusals",
    response_model=RefusalList,
    responses=error_responses(404),
    response_description="The latest refused requests to the source, newest first",
)
async def list_refusals(
    source_id: IdPath,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many (at most 100)")] = 50,
) -> dict[str, object]:
    """Requests to the source's URL that were refused (bad or missing signature, expired,
    the source disabled, over its rate), and why; their bodies and signatures are not kept."""
    return {"data": await recent_refusals(session, source_id, limit)}
