"""`/v1/endpoints`: subscriptions, their secrets, test sends and recovery."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status

from gateway.api.deps import (
    JSON_BODY,
    BoxDep,
    DispatcherDep,
    IdPath,
    PagingDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    StatusFilter,
    TenantFilter,
)
from gateway.api.schemas import Page, error_responses
from gateway.auth import scoped_tenant
from gateway.outbound import endpoints as service
from gateway.outbound import reads, transforms
from gateway.outbound.schemas import (
    AuthOut,
    DeliveryOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointTestSend,
    EndpointUpdate,
    EventPublished,
    FilterTest,
    FilterTestResult,
    Recover,
    Recovered,
    SecretOut,
    SecretRotate,
)
from gateway.outbound.transforms import TransformationTest, TransformationTested

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])

EndpointStatusFilter = Annotated[
    Literal["enabled", "disabled"] | None,
    Query(alias="status", description="Only enabled, or only disabled, endpoints"),
]
FailingFilter = Annotated[
    bool | None,
    Query(
        description="`true`: only endpoints whose every attempt fails (`failing_since` "
        "set); `false`: only the others"
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointCreated,
    dependencies=JSON_BODY,
    responses=error_responses(413, 415),
    response_description="Created; the answer shows the signing secret",
)
async def create_endpoint(
    body: EndpointCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    box: BoxDep,
) -> dict[str, object]:
    """Subscribe a URL; the answer is the only one (besides `/secret`) that shows the secret."""
    body.tenant_id = scoped_tenant(principal, body.tenant_id)
    endpoint = await service.create_endpoint(session, body, settings, box)
    await session.commit()
    return reads.endpoint_out(endpoint, box, with_secret=True)


@router.get(
    "", response_model=Page[EndpointOut], response_description="A page of endpoints, newest first"
)
async def list_endpoints(
    session: SessionDep,
    principal: PrincipalDep,
    paging: PagingDep,
    box: BoxDep,
    tenant_id: TenantFilter = None,
    endpoint_status: EndpointStatusFilter = None,
    failing: FailingFilter = None,
) -> dict[str, object]:
    found = await reads.list_endpoints(
        session,
        box,
        tenant_id=tenant_id,
        disabled=None if endpoint_status is None else endpoint_status == "disabled",
        failing=failing,
        scope=principal.tenant_id,
        limit=paging.limit,
        cursor=paging.cursor,
    )
    return found.body()


@router.get(
    "/{endpoint_id}",
    response_model=EndpointOut,
    responses=error_responses(404),
    response_description="The endpoint",
)
async def get_endpoint(
    endpoint_id: IdPath, session: SessionDep, principal: PrincipalDep, box: BoxDep
) -> dict[str, object]:
    endpoint = await service.get_endpoint(session, endpoint_id, principal.tenant_id)
    return reads.endpoint_out(endpoint, box)


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointOut,
    dependencies=JSON_BODY,
    responses=error_responses(404, 413, 415),
    response_description="The endpoint as changed",
)
async def update_endpoint(
    endpoint_id: IdPath,
    body: EndpointUpdate,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    box: BoxDep,
    dispatcher: DispatcherDep,
) -> dict[str, object]:
    if "tenant_id" in body.model_fields_set:
        body.tenant_id = scoped_tenant(principal, body.tenant_id)
    endpoint = await service.update_endpoint(
        session, endpoint_id, body, settings, box, principal.tenant_id
    )
    await session.commit()
    shown = reads.endpoint_out(endpoint, box)
    if "ordered" in body.model_fields_set:
        # What its keys, or its failed deliveries, held back goes now.
        await service.dispatch_released(session, dispatcher, endpoint_id)
    return shown


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
    response_description="Deleted, with its deliveries and their attempts",
)
async def delete_endpoint(
    endpoint_id: IdPath, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Delete the endpoint with its deliveries and their attempt logs."""
    await service.delete_endpoint(session, endpoint_id, principal.tenant_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{endpoint_id}/secret",
    response_model=SecretOut,
    responses=error_responses(404),
    response_description="The current secret, and until when the previous one still signs",
)
async def get_secret(
    endpoint_id: IdPath, session: SessionDep, principal: PrincipalDep, box: BoxDep
) -> dict[str, object]:
    secret, expires = await service.reveal_secret(session, endpoint_id, box, principal.tenant_id)
    return {"secret": secret, "previous_secret_expires_at": expires}


@router.get(
    "/{endpoint_id}/auth",
    response_model=AuthOut,
    responses=error_responses(404),
    response_description="The endpoint's auth with its secrets in clear",
)
async def get_auth(
    endpoint_id: IdPath, session: SessionDep, principal: PrincipalDep, box: BoxDep
) -> dict[str, object]:
    """Reveal the credentials the endpoint's deliveries authenticate with."""
    return {"auth": await service.reveal_auth(session, endpoint_id, box, principal.tenant_id)}


@router.post(
    "/{endpoint_id}/secret/rotate",
    response_model=SecretOut,
    dependencies=JSON_BODY,
    responses=error_responses(404, 409, 413, 415),
    response_description="The new secret; the previous one signs beside it for the overlap",
)
async def rotate_secret(
    endpoint_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    box: BoxDep,
    body: Annotated[SecretRotate | None, Body()] = None,
) -> dict[str, object]:
    """New secret (given or generated); the previous one keeps signing beside it for 24 hours."""
    endpoint, secret = await service.rotate_secret(
        session,
        endpoint_id,
        body.secret if body else None,
        settings.secret_rotation_overlap_hours,
        box,
        principal.tenant_id,
    )
    return {"secret": secret, "previous_secret_expires_at": endpoint.previous_secret_expires_at}


@router.post(
    "/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventPublished,
    dependencies=JSON_BODY,
    responses=error_responses(404, 409, 413, 415),
    response_description="The test event, stored and being delivered",
)
async def send_test(
    endpoint_id: IdPath,
    session: SessionDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    body: Annotated[EndpointTestSend | None, Body()] = None,
) -> dict[str, object]:
    """Send an event to this endpoint only, whatever its type filters: a `webhook.test`
    event, or one of `event_type` with `data` (left out: the type's first example in the
    event-type catalogue)."""
    published = await service.send_test(
        session,
        dispatcher,
        endpoint_id,
        principal.tenant_id,
        event_type=body.event_type if body else None,
        data=body.data if body else None,
    )
    return reads.published_out(published)


@router.post(
    "/{endpoint_id}/transformation/test",
    response_model=TransformationTested,
    dependencies=JSON_BODY,
    responses=error_responses(404, 413, 415),
    response_description="What the transformation made of the sample, or its error",
)
async def test_transformation(
    endpoint_id: IdPath,
    body: TransformationTest,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    box: BoxDep,
) -> dict[str, object]:
    """Run the endpoint's transformation, or the `code` given, on a sample webhook and
    show the request it makes (or the error); nothing is sent or saved."""
    return await transforms.try_on_endpoint(
        session, endpoint_id, body, settings, box, principal.tenant_id
    )


@router.post(
    "/{endpoint_id}/filter/test",
    response_model=FilterTestResult,
    dependencies=JSON_BODY,
    responses=error_responses(404, 413, 415),
    response_description="Whether the sample passes the filter, and why not when it fails",
)
async def test_filter(
    endpoint_id: IdPath, body: FilterTest, session: SessionDep, principal: PrincipalDep
) -> dict[str, object]:
    """Try the endpoint's filter, or the `filter` given, on a sample event; nothing is
    sent or saved."""
    matches, error = await service.test_filter(session, endpoint_id, body, principal.tenant_id)
    return {"matches": matches, "error": error}


@router.post(
    "/{endpoint_id}/recover",
    response_model=Recovered,
    dependencies=JSON_BODY,
    responses=error_responses(404, 409, 413, 415),
    response_description="How many deliveries were queued again",
)
async def recover(
    endpoint_id: IdPath,
    body: Recover,
    session: SessionDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
) -> dict[str, int]:
    """Re-queue this endpoint's failed deliveries created since `since` (and before `until`)."""
    count = await service.recover(
        session, dispatcher, endpoint_id, body.since, body.until, principal.tenant_id
    )
    return {"requeued": count}


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=Page[DeliveryOut],
    responses=error_responses(404),
    response_description="A page of the endpoint's deliveries, newest first",
)
async def list_endpoint_deliveries(
    endpoint_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    paging: PagingDep,
    status_filter: StatusFilter = None,
) -> dict[str, object]:
    found = await reads.list_deliveries(
        session,
        endpoint_id=endpoint_id,
        status=status_filter,
        scope=principal.tenant_id,
        limit=paging.limit,
        cursor=paging.cursor,
    )
    return found.body()
