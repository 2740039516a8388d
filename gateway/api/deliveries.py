"""`/v1/deliveries`: one delivery with its full attempt log, manual retry and skip."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.api.deps import DispatcherDep, IdPath, PrincipalDep, SessionDep
from gateway.api.schemas import error_responses
from gateway.outbound import endpoints as service
from gateway.outbound import ordering, reads
from gateway.outbound.schemas import DeliveryDetail, DeliveryOut
from gateway.store.models import Delivery

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get(
    "/{delivery_id}",
    response_model=DeliveryDetail,
    responses=error_responses(404),
    response_description="The delivery with its attempt log",
)
async def get_delivery(
    delivery_id: IdPath, session: SessionDep, principal: PrincipalDep
) -> dict[str, object]:
    return await reads.get_delivery_with_attempts(session, delivery_id, principal.tenant_id)


@router.post(
    "/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=error_responses(404, 409),
    response_description="Queued for an attempt now",
)
async def retry(
    delivery_id: IdPath, session: SessionDep, dispatcher: DispatcherDep, principal: PrincipalDep
) -> Delivery:
    """Queue one more attempt now (also for a succeeded delivery: a resend)."""
    return await service.retry_delivery(session, dispatcher, delivery_id, principal.tenant_id)


@router.post(
    "/{delivery_id}/skip",
    response_model=DeliveryOut,
    responses=error_responses(404, 409),
    response_description="Skipped: it will not be sent",
)
async def skip(
    delivery_id: IdPath, session: SessionDep, dispatcher: DispatcherDep, principal: PrincipalDep
) -> Delivery:
    """Never send this delivery (`status` becomes `skipped`): one that failed, or one
    still pending that is not being attempted right now (409 otherwise). To an ordered
    endpoint, the next event of its `ordering_key` goes at once: what a strict endpoint's
    failed delivery needs to let its key move on."""
    return await ordering.skip(session, dispatcher, delivery_id, principal.tenant_id)
