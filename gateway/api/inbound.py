"""`POST /in/{source_id}`: where providers send webhooks. Their signature is the credential."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import BoxDep, DispatcherDep, IdPath, SessionDep
from gateway.api.schemas import InboundAccepted
from gateway.inbound.ingest import ingest

router = APIRouter(tags=["inbound"])


@router.post(
    "/in/{source_id}",
    response_model=InboundAccepted,
    responses={
        401: {"description": "Signature missing, wrong, expired or replayed; nothing stored"},
        403: {"description": "The source is disabled"},
        404: {"description": "No such source"},
        413: {"description": "Body over the size limit"},
        429: {"description": "Over the source's rate limit; see Retry-After"},
    },
)
async def receive(
    source_id: IdPath, request: Request, session: SessionDep, dispatcher: DispatcherDep,
    box: BoxDep,
) -> JSONResponse:
    """Verify on the raw bytes, deduplicate on the provider's delivery id, store, fan out."""
    body = await request.body()
    state = request.app.state
    result = await ingest(session, dispatcher, box, state.admission,
                          state.settings.inbound_rate_limit, source_id, request.headers, body)
    if result.status == "challenge":
        return JSONResponse({"challenge": result.challenge})
    return JSONResponse({"status": result.status, "event_id": result.event_id})
