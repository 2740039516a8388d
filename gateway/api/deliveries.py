"""`/v1/deliveries`: one delivery with its full attempt log, and manual retry."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlmodel import col

from gateway.api.deps import DispatcherDep, IdPath, PrincipalDep, SessionDep
from gateway.api.schemas import DeliveryDetail, DeliveryOut
from gateway.outbound import endpoints as service
from gateway.store.models import Attempt, Delivery

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get("/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(
    delivery_id: IdPath, session: SessionDep, principal: PrincipalDep
) -> dict[str, object]:
    delivery = await service.get_delivery(session, delivery_id, principal.tenant_id)
    attempts = await session.scalars(
        select(Attempt)
        .where(col(Attempt.delivery_id) == delivery_id)
        .order_by(col(Attempt.attempt))
    )
    return {**delivery.model_dump(), "attempts": list(attempts)}


@router.post("/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             response_model=DeliveryOut)
async def retry(
    delivery_id: IdPath, session: SessionDep, dispatcher: DispatcherDep, principal: PrincipalDep
) -> Delivery:
    """Queue one more attempt now (also for a succeeded delivery: a resend)."""
    return await service.retry_delivery(session, dispatcher, delivery_id, principal.tenant_id)
