"""`/v1/endpoints/{id}/stream`: a stream endpoint's deliveries, read as server-sent events
by a client (`gateway listen`) that acknowledges each (`outbound/streams.py`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse

from gateway.api.deps import (
    JSON_BODY,
    DispatcherDep,
    IdPath,
    PrincipalDep,
    SessionDep,
    SessionMakerDep,
)
from gateway.api.schemas import error_responses
from gateway.db import SessionMaker
from gateway.errors import Conflict, NotFound
from gateway.outbound import streams
from gateway.outbound.endpoints import get_endpoint
from gateway.outbound.schemas import StreamAck
from gateway.queue.dispatch import Dispatcher
from gateway.store.models import EndpointKind

log = logging.getLogger("gateway.streams")
router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])

# A comment line this often keeps proxies (and the client's read timeout) from closing
# a quiet stream.
HEARTBEAT_SECONDS = 10.0
# How often a quiet stream looks whether its client is still there.
DISCONNECT_CHECK_SECONDS = 1.0

STREAM_DOC = """Server-sent events, until the client disconnects: first `event: ready`, once
the stream is subscribed, then an `event: delivery` for each attempt, whose `data` is
`{"delivery_id", "attempt", "event_id", "event_type", "method", "headers", "body",
"body_encoding"}`: the signed request, to forward as it is. Each must be acknowledged
with `POST /v1/endpoints/{endpoint_id}/stream/ack` within GATEWAY_DELIVERY_TIMEOUT; an
attempt not acknowledged, or offered while no client is connected, fails and is retried
on the schedule. A comment line (`: keep-alive`) comes every 10 seconds. Connecting
makes the endpoint's deliveries waiting for a retry due at once. An HTTP endpoint has no
stream (404)."""
STREAM_EXAMPLE = (
    'event: ready\ndata: {"endpoint_id": "ep_01KF3Y8Q2W6N4R9T7V5X1Z3B8D", "resumed": 0}\n\n'
    'event: delivery\ndata: {"delivery_id":"dlv_01KF41J7M4A2C6E8G1J3K5M7NQ","attempt":1,'
    '"event_id":"evt_01KF41J7M3P5S8V2X6Z9B4D7FH","event_type":"invoice.paid","method":"POST",'
    '"headers":{"content-type":"application/json","webhook-id":"evt_01KF41J7M3P5S8V2X6Z9B4D7FH",'
    '"webhook-timestamp":"1768472102","webhook-signature":"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9'
    'NDN/H/pI4=","webhook-attempt":"1"},"body":"{\\"id\\":\\"evt_01KF41J7M3P5S8V2X6Z9B4D7FH\\",'
    '\\"type\\":\\"invoice.paid\\",\\"timestamp\\":\\"2026-01-15T10:15:02.318Z\\",'
    '\\"data\\":{\\"invoice\\":\\"in_42\\"}}","body_encoding":"utf-8"}\n\n'
    ": keep-alive\n\n"
)


async def get_streams(request: Request) -> streams.StreamHub:
    return request.app.state.streams  # type: ignore[no-any-return]


StreamsDep = Annotated[streams.StreamHub, Depends(get_streams)]


@router.get(
    "/{endpoint_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": STREAM_EXAMPLE}
            },
            "description": STREAM_DOC,
        },
        **error_responses(404),
    },
    response_description="The endpoint's deliveries as server-sent events",
)
async def stream(
    endpoint_id: IdPath,
    request: Request,
    principal: PrincipalDep,
    sessionmaker: SessionMakerDep,
    dispatcher: DispatcherDep,
    hub: StreamsDep,
) -> StreamingResponse:
    """Read a stream endpoint's deliveries (what `gateway listen` does)."""
    # A session of its own, closed before streaming: the request's would be held open
    # for as long as the client stays.
    async with sessionmaker() as session:
        endpoint = await get_endpoint(session, endpoint_id, principal.tenant_id)
    if endpoint.kind != EndpointKind.STREAM:
        raise NotFound(
            f"endpoint {endpoint_id} has no stream: it is of kind {endpoint.kind}, its "
            "deliveries are POSTed to its url"
        )
    return StreamingResponse(
        _events(request, hub, sessionmaker, dispatcher, endpoint_id),
        media_type="text/event-stream",
        # Not buffered by proxies (nginx reads X-Accel-Buffering), nor cached.
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _events(
    request: Request,
    hub: streams.StreamHub,
    sessionmaker: SessionMaker,
    dispatcher: Dispatcher,
    endpoint_id: str,
) -> AsyncIterator[str]:
    async with hub.listen(endpoint_id) as listening:
        try:
            async with sessionmaker() as session:
                resumed = await streams.resume(session, dispatcher, endpoint_id)
        except Exception as exc:  # they come on their schedule instead
            log.warning("stream %s: waiting deliveries not brought forward: %r", endpoint_id, exc)
            resumed = 0
        yield _event("ready", json.dumps({"endpoint_id": endpoint_id, "resumed": resumed}))
        quiet_since = time.monotonic()
        while True:
            offer = await listening.next(DISCONNECT_CHECK_SECONDS)
            if offer is not None:
                yield _event("delivery", offer)
                quiet_since = time.monotonic()
                continue
            if await request.is_disconnected():
                return
            if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


@router.post(
    "/{endpoint_id}/stream/ack",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=JSON_BODY,
    responses=error_responses(404, 409, 413, 415),
    response_description="Passed to the attempt that was waiting for it",
)
async def acknowledge(
    endpoint_id: IdPath,
    body: StreamAck,
    session: SessionDep,
    principal: PrincipalDep,
    hub: StreamsDep,
) -> Response:
    """Acknowledge one offered attempt with what the local receiver answered; the
    attempt is recorded with that status (2xx: delivered)."""
    await get_endpoint(session, endpoint_id, principal.tenant_id)
    if not await streams.check_acknowledgeable(session, endpoint_id, body.delivery_id):
        raise NotFound(f"delivery {body.delivery_id!r} not found for endpoint {endpoint_id}")
    ack = streams.Ack(body.delivery_id, body.attempt, body.status_code, body.body, body.error)
    if not await hub.acknowledge(ack):
        raise Conflict(
            f"attempt {body.attempt} of {body.delivery_id} is not waiting for an "
            "acknowledgement: it timed out (and will be retried), or was acknowledged already"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
