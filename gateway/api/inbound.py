"""`POST /in/{source_id}`: where providers send webhooks. Their signature is the credential."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import IdPath, InboundDep, client_address
from gateway.api.schemas import ErrorOut, error_responses
from gateway.inbound.ingest import ingest
from gateway.inbound.schemas import InboundAccepted, InboundChallenge
from gateway.tracing import span

router = APIRouter(tags=["inbound"])


@router.post(
    "/in/{source_id}",
    response_model=InboundAccepted | InboundChallenge,
    responses={
        **error_responses(404, 413, 422, 429, 503),
        401: {
            "model": ErrorOut,
            "description": "Signature missing, wrong, expired or replayed; nothing stored",
        },
        403: {"model": ErrorOut, "description": "The source is disabled"},
    },
    response_description="Verified and stored (or a duplicate), or Slack's handshake answered",
)
async def receive(source_id: IdPath, request: Request, inbound: InboundDep) -> JSONResponse:
    """Verify on the raw bytes, deduplicate on the provider's delivery id, store, fan out."""
    body = await request.body()
    with span("webhook.receive", **{"gateway.source_id": source_id}):
        result = await ingest(inbound, source_id, request.headers, body, client_address(request))
    if result.status == "challenge":
        return JSONResponse({"challenge": result.challenge})
    return JSONResponse({"status": result.status, "event_id": result.event_id})
