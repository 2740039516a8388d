"""What the OpenAPI document says beyond the routes: an example on every request and
answer, the webhook that endpoints receive (the document's `webhooks`), and one webhook
per type of the event-type catalogue, added when the document is served (the catalogue
changes while the gateway runs), so that receivers can generate their types from it.

Examples are written once, on the models (`json_schema_extra`); they are copied onto
each operation that sends or answers the model, where Swagger UI shows them."""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Route

from gateway.outbound.catalogue import shown_event_types
from gateway.outbound.client import USER_AGENT
from gateway.outbound.payload import event_body
from gateway.outbound.schemas import EVENT_EXAMPLE, SECRET_EXAMPLE
from gateway.outbound.signer import secret_key, sign

log = logging.getLogger("gateway.openapi")

# One delivery of the example event, signed for real with the example secret: a reader
# can check a Standard Webhooks library against it.
_SIGNED_AT = 1768472103
_BODY = event_body(
    EVENT_EXAMPLE["id"],
    EVENT_EXAMPLE["type"],
    datetime.fromisoformat(EVENT_EXAMPLE["created_at"]).astimezone(UTC),
    json.dumps(EVENT_EXAMPLE["data"], separators=(",", ":")),
)
_SIGNATURE = sign(secret_key(SECRET_EXAMPLE), EVENT_EXAMPLE["id"], _SIGNED_AT, _BODY)


class WebhookPayload(BaseModel):
    """The body of every delivery: the same bytes on every attempt."""

    model_config = ConfigDict(json_schema_extra={"examples": [json.loads(_BODY)]})

    id: str = Field(
        description="The event's id (`evt_` and a ULID), as in the `webhook-id` header: the "
        "same on every attempt and for every endpoint. Deduplicate on it."
    )
    type: str = Field(
        description="The event's type: the publisher's, `webhook.test` for a test send, "
        "`endpoint.failing`, `endpoint.disabled` and `endpoint.recovered` when the gateway "
        "warns about, disables, or sees again an endpoint that was failing."
    )
    timestamp: datetime = Field(
        description="When the gateway stored the event, RFC 3339 in UTC to the millisecond; "
        "the same on every attempt. Deliveries are not ordered: order by this."
    )
    data: dict[str, Any] = Field(
        description="The event's data: exactly the JSON object that was published (for an "
        "event received through a source, the provider's payload)."
    )
    previous_data: dict[str, Any] | None = Field(
        None,
        description="Only when the publisher gave it: an update event's data before the "
        "change, exactly the JSON object that was published. Absent otherwise.",
    )


_RETRY_AFTER = (
    "Retried no sooner than the `Retry-After` header asks (seconds or an HTTP date, at "
    "most 24 hours), and no sooner than the retry schedule; counts towards the circuit "
    "breaker. The way to slow the gateway down."
)
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    "2XX": {
        "description": "Success: the delivery is done. The body does not matter; its first "
        "4 KiB are kept in the attempt log. Answer within GATEWAY_DELIVERY_TIMEOUT "
        "seconds (15 by default, from connecting to the last byte), and do the work "
        "afterwards."
    },
    "410": {
        "description": "Gone: this delivery fails without retries, the endpoint is "
        "disabled at once (its waiting deliveries end as failed) and an "
        "`endpoint.disabled` event is published. Only to unsubscribe for good."
    },
    "429": {"description": _RETRY_AFTER},
    "503": {"description": _RETRY_AFTER},
    "default": {
        "description": "Anything else fails the attempt, and so do a timeout, a connection "
        "or TLS error and a redirect (never followed). It is retried on "
        "GATEWAY_RETRY_SCHEDULE (by default 8 attempts over about 28 hours, each wait "
        "spread by ±20%); after the last one the delivery is failed. An endpoint whose "
        "every attempt fails for GATEWAY_DISABLE_AFTER (5 days) is disabled."
    },
}


def _add_webhook(app: FastAPI) -> None:
    @app.webhooks.post(
        "event",
        operation_id="receive_event",
        summary="An event, as every subscribed endpoint receives it",
        tags=["webhooks"],
        # Declared here too so that FastAPI adds no 422 of its own to a webhook.
        responses=dict(WEBHOOK_RESPONSES),
    )
    async def event(
        payload: Annotated[WebhookPayload, Body()],
        webhook_id: Annotated[
            str,
            Header(
                description="The event's id, the body's `id`: identical on every attempt, "
                "manual retry and recovery, and for every endpoint that receives the event.",
                examples=[EVENT_EXAMPLE["id"]],
            ),
        ],
        webhook_timestamp: Annotated[
            int,
            Header(
                description="Unix time in seconds at which this attempt was signed (each "
                "retry is signed afresh). Refuse one more than 5 minutes from your clock.",
                examples=[_SIGNED_AT],
            ),
        ],
        webhook_signature: Annotated[
            str,
            Header(
                description="`v1,` and the base64 HMAC-SHA256, keyed with the base64-decoded "
                "part of the endpoint's `whsec_` secret, of "
                "`{webhook-id}.{webhook-timestamp}.{raw body}`. For "
                "GATEWAY_SECRET_ROTATION_OVERLAP_HOURS (24) after a rotation, two "
                "signatures separated by a space (new and previous secret): one matching "
                "is enough. Any Standard Webhooks library checks it; refuse with 401 "
                "what does not verify.",
                examples=[_SIGNATURE],
            ),
        ],
        webhook_attempt: Annotated[
            int,
            Header(
                description="This attempt's number, from 1; retries, manual ones included, "
                "count on.",
                examples=[1],
            ),
        ],
        user_agent: Annotated[
            str,
            Header(description="The gateway's name and version.", examples=[USER_AGENT]),
        ],
    ) -> None:
        """One `POST` to the endpoint's URL per attempt, signed per the Standard Webhooks
        specification, with `content-type: application/json` and any custom `headers`
        the endpoint was given. Delivery is at least once and not ordered. An endpoint
        whose `signature` picks another scheme (`hmac`, `github`, `stripe`) gets that
        scheme's headers instead of the `webhook-*` ones (see docs/signatures.md)."""


def _models() -> dict[str, type[BaseModel]]:
    """The gateway's models by the title their schema carries (generic pages included)."""
    found: dict[str, type[BaseModel]] = {}
    pending = list(BaseModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("gateway."):
            found[cls.model_config.get("title") or cls.__name__] = cls
    return found


def _written_examples(cls: type[BaseModel]) -> list[Any]:
    extra = cls.model_config.get("json_schema_extra")
    if callable(extra):
        schema: dict[str, Any] = {}
        extra(schema, cls)  # type: ignore[call-arg,arg-type]
        extra = schema
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return list(examples) if isinstance(examples, list) else []


def _shown(examples: list[Any], summaries: tuple[str, ...]) -> dict[str, Any]:
    """A media type's example, or its named examples when the model has several."""
    if len(examples) == 1:
        return {"example": examples[0]}
    # A model that names fewer than it has: the rest are numbered (no 500 for a name).
    summaries = (
        *summaries,
        *(f"Example {n}" for n in range(len(summaries) + 1, len(examples) + 1)),
    )
    return {
        "examples": {
            f"example{n}": {"summary": summary, "value": example}
            for n, (summary, example) in enumerate(zip(summaries, examples, strict=False), 1)
        }
    }


def _complete(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # FastAPI drops every null from the document, examples' included (and pydantic sorts
    # their keys): an example without its nulls lacks required fields. So each model's
    # examples are put back as written, and shown on the operations that use it.
    named = {schema.get("title"): name for name, schema in schemas.items()}
    shown: dict[str, dict[str, Any]] = {}
    for title, cls in _models().items():
        examples = _written_examples(cls)
        if title in named and examples:
            schemas[named[title]]["examples"] = examples
            shown[f"#/components/schemas/{named[title]}"] = _shown(
                examples, getattr(cls, "example_summaries", ())
            )
    for item in document.get("webhooks", {}).values():
        for operation in item.values():
            # What the endpoint answers, and what the gateway makes of it.
            operation["responses"] = copy.deepcopy(WEBHOOK_RESPONSES)
    for item in [*document["paths"].values(), *document.get("webhooks", {}).values()]:
        for operation in item.values():
            for body in [operation.get("requestBody", {}), *operation["responses"].values()]:
                for media in body.get("content", {}).values():
                    if "example" in media or "examples" in media:
                        continue
                    schema = media.get("schema", {})
                    for option in [schema, *schema.get("anyOf", [])]:
                        if option.get("$ref") in shown:
                            media.update(shown[option["$ref"]])
                            break


_LOCAL_REF = re.compile(r"^#(/.*)?$")


def _rebased(schema: Any, base: str) -> Any:
    """The schema with its own `#...` references pointing at where it now lives."""
    if isinstance(schema, list):
        return [_rebased(item, base) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _rebased(value, base) for key, value in schema.items()}
    ref = schema.get("$ref")
    if isinstance(ref, str) and _LOCAL_REF.match(ref):
        out["$ref"] = base + ref[1:]
    return out


def _type_webhook(event_type: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The webhook of one catalogued type: the payload, with this type and its data."""
    name = event_type["name"]
    data: dict[str, Any] = {"type": "object"}
    if event_type["schema"] is not None:
        key = f"data.{name}"
        document["components"]["schemas"][key] = _rebased(
            event_type["schema"], f"#/components/schemas/{key}"
        )
        data = {"$ref": f"#/components/schemas/{key}"}
    media: dict[str, Any] = {
        "schema": {
            "allOf": [
                {"$ref": "#/components/schemas/WebhookPayload"},
                {"type": "object", "properties": {"type": {"const": name}, "data": data}},
            ]
        }
    }
    examples = [
        {**json.loads(_BODY), "type": name, "data": example} for example in event_type["examples"]
    ]
    if examples:
        media.update(_shown(examples, ()))
    generic = document.get("webhooks", {}).get("event", {}).get("post", {})
    operation: dict[str, Any] = {
        "tags": ["event types"],
        "summary": f"{name}" + (" (deprecated)" if event_type["deprecated"] else ""),
        "description": event_type["description"] or f"An event of type `{name}`.",
        "operationId": f"receive_{name}",
        "parameters": copy.deepcopy(generic.get("parameters", [])),
        "requestBody": {"required": True, "content": {"application/json": media}},
        "responses": copy.deepcopy(WEBHOOK_RESPONSES),
    }
    if event_type["deprecated"]:
        operation["deprecated"] = True
    return {"post": operation}


def with_catalogue(document: dict[str, Any], types: list[dict[str, Any]]) -> dict[str, Any]:
    """The document with a webhook per type; the document itself is left as it is."""
    if not types:
        return document
    shown = {
        **document,
        "webhooks": dict(document.get("webhooks", {})),
        "components": {
            **document["components"],
            "schemas": dict(document["components"]["schemas"]),
        },
    }
    for event_type in types:
        shown["webhooks"][event_type["name"]] = _type_webhook(event_type, shown)
    return shown


def install(app: FastAPI) -> None:
    """The webhook, the examples put where Swagger UI shows them, and the catalogue."""
    _add_webhook(app)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _complete(build())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    async def served(request: Request) -> JSONResponse:
        try:
            async with request.app.state.sessionmaker() as session:
                types = await shown_event_types(session)
        except Exception as exc:  # the document must not depend on the database
            log.warning("the event-type catalogue is left out of /openapi.json: %s", exc)
            types = []
        return JSONResponse(with_catalogue(app.openapi(), types))

    # FastAPI's own route serves the document as it was built; this one adds the catalogue.
    for n, route in enumerate(app.router.routes):
        if isinstance(route, Route) and route.path == app.openapi_url:
            app.router.routes[n] = Route(app.openapi_url, served, include_in_schema=False)
