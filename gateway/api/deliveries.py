"""`/v1/deliveries`: one delivery with its full attempt log, and manual retry."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlmodel import col

from gateway.api.deps import DispatcherDep, IdPath, SessionDep
from gateway.api.schemas import DeliveryDetail, DeliveryOut
from gateway.outbound.endpoints import retry_delivery
from gateway.store.models import Attempt, Delivery
from gateway.store.queries import get_or_404

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get("/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(delivery_id: IdPath, session: SessionDep) -> dict[str, object]:
    delivery = await get_or_404(session, Delivery, delivery_id, "delivery")
    attempts = await session.scalars(
        select(Attempt)
        .where(col(Attempt.delivery_id) == delivery_id)
        .order_by(col(Attempt.attempt))
    )
    return {**delivery.model_dump(), "attempts": list(attempts)}


@router.post("/{delivery_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             response_model=DeliveryOut)
async def retry(delivery_id: IdPath, session: SessionDep, dispatcher: DispatcherDep) -> Delivery:
    """Queue one more attempt now (also for a succeeded delivery: a resend)."""
    return await retry_delivery(session, dispatcher, delivery_id)
