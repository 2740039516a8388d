"""`POST /v1/events`, the hottest route, with its parameters resolved by hand.

FastAPI's generic resolution of a route's dependencies and parameters cost about a fifth
of the API's CPU per publish (py-spy at 800 publishes/s: `solve_dependencies` 22% of
the process, the gateway's own checks in it 5%). This route class reads the parameters
`publish_event` declares the way FastAPI would (the API key as every management route
reads it, a JSON body validated as `EventCreate`, the `Idempotency-Key` header under
the same constraints) and then calls that function itself, so that the declaration in
`events.py` stays the route's one definition: its OpenAPI, its checks and its code.
Errors are FastAPI's: a `RequestValidationError` with the same types and locations,
answered by the application's handler.

One order differs, on purpose: the key is checked before the body is parsed, so an
unauthenticated caller gets its 401 whatever it sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from gateway.api.deps import authenticate, bearer, require_json
from gateway.outbound.schemas import EventCreate, EventPublished

IDEMPOTENCY_KEY = Header(
    min_length=1,
    max_length=200,
    description="Publish at most once per key: a repeat answers 200 with the first "
    "event (409 if its body differs). Scoped to the caller: a tenant, or one unscoped key.",
)

_idempotency_key = TypeAdapter(Annotated[str, IDEMPOTENCY_KEY])
_published = TypeAdapter(EventPublished)


def _located(error: ValidationError, *prefix: str) -> list[Any]:
    return [{**e, "loc": (*prefix, *e["loc"])} for e in error.errors(include_url=False)]


_ABSENT = object()


async def _json_body(request: Request) -> Any:
    """The body as FastAPI reads it: `_ABSENT` when empty, else parsed as JSON."""
    if not await request.body():
        return _ABSENT
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from exc
    except ValueError as exc:  # not UTF-8 (or -16, -32): FastAPI's bare 400, as main.py expects
        raise HTTPException(400, "There was an error parsing the body") from exc


class PublishRoute(APIRoute):
    """The route of `publish_event` (see the module's docstring); for no other function."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        status_code = self.status_code or 200

        async def handle(request: Request) -> Response:
            principal = await authenticate(request, await bearer(request))
            await require_json(request)
            raw = await _json_body(request)
            errors: list[Any] = []
            idempotency_key = request.headers.get("idempotency-key")
            if idempotency_key is not None:
                try:
                    _idempotency_key.validate_python(idempotency_key)
                except ValidationError as exc:
                    errors += _located(exc, "header", "idempotency-key")
            body = None
            if raw is _ABSENT:
                errors.append(
                    {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
                )
            else:
                try:
                    body = EventCreate.model_validate(raw, from_attributes=True)
                except ValidationError as exc:
                    errors += _located(exc, "body")
            if errors:
                raise RequestValidationError(errors, body=None if raw is _ABSENT else raw)
            state = request.app.state
            answer = Response()
            answer.status_code = None  # type: ignore[assignment]  # set by the endpoint, or not
            content = await endpoint(
                body=body,
                batcher=state.batcher,
                principal=principal,
                settings=state.settings,
                response=answer,
                idempotency_key=idempotency_key,
            )
            return Response(
                _published.dump_json(_published.validate_python(content)),
                status_code=answer.status_code or status_code,
                media_type="application/json",
            )

        return handle
