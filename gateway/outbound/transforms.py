"""An endpoint's transformation: the request a delivery sends, as its JavaScript makes it.

The code's `handler(webhook)` gets `{"method", "url", "headers", "payload",
"event_type"}` (the payload being the body the endpoint would receive, parsed) and
returns it changed, or with `"cancel": true`. The request it describes is checked
here as an endpoint's would be on save (the URL's form, the headers the gateway
keeps to itself); its addresses are checked at connect time, as every delivery's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.crypto import SecretBox
from gateway.errors import Invalid
from gateway.outbound.addresses import check_url_form
from gateway.outbound.endpoints import get_endpoint
from gateway.outbound.payload import event_body
from gateway.outbound.schemas import MAX_HEADER_VALUE, MAX_HEADERS, check_headers
from gateway.settings import Settings
from gateway.timeutil import utcnow
from gateway.transform import MAX_CODE_CHARS, TransformError, runtime
from gateway.validation import EventType, Input, Text, check_json_value, storable

METHODS = ("POST", "PUT", "PATCH")
MAX_URL = 2048


@dataclass(frozen=True)
class Outgoing:
    """What an attempt sends: the endpoint's own request, or its transformation's."""

    method: str
    url: str
    headers: dict[str, str]  # the endpoint's headers; the gateway adds its own
    body: bytes


def webhook_json(
    method: str, url: str, headers: dict[str, str], body: bytes, event_type: str
) -> str:
    """The handler's argument as JSON text; the body is spliced in, not parsed."""
    head = json.dumps(
        {"method": method, "url": url, "headers": headers, "event_type": event_type},
        separators=(",", ":"),
    )
    return f'{head[:-1]},"payload":{body.decode()}}}'


async def transformed(
    code: str, request: Outgoing, event_type: str, timeout_ms: int
) -> Outgoing | None:
    """The request as the code changes it; None when it cancels the delivery.

    TransformError when the code fails or answers something that is not a request.
    """
    argument = webhook_json(request.method, request.url, request.headers, request.body, event_type)
    result = await runtime(timeout_ms).run(code, argument)
    return outgoing_of(result, request)


def outgoing_of(result: Any, request: Outgoing) -> Outgoing | None:
    cancel = result.get("cancel", False)
    if not isinstance(cancel, bool):
        raise TransformError(f"result: cancel must be true or false, not {_kind(cancel)}")
    if cancel:
        return None
    if "payload" not in result:
        raise TransformError("result: payload is missing (return the webhook object, changed)")
    method = result.get("method", request.method)
    if method not in METHODS:
        raise TransformError(f"result: method must be one of {', '.join(METHODS)}")
    url = result.get("url", request.url)
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise TransformError(f"result: url must be a string of at most {MAX_URL} characters")
    try:
        check_url_form(storable(url))
    except ValueError as exc:
        raise TransformError(f"result: {exc}") from None
    headers = result.get("headers", request.headers)
    if (
        not isinstance(headers, dict)
        or len(headers) > MAX_HEADERS
        or not all(isinstance(v, str) and len(v) <= MAX_HEADER_VALUE for v in headers.values())
    ):
        raise TransformError(
            f"result: headers must be an object of at most {MAX_HEADERS} names with string "
            f"values of at most {MAX_HEADER_VALUE} characters"
        )
    try:
        check_headers(headers)
    except ValueError as exc:
        raise TransformError(f"result: {exc}") from None
    try:
        body = json.dumps(result["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise TransformError("result: payload is not valid Unicode (a lone surrogate)") from None
    return Outgoing(method, url, headers, body)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class TransformationTest(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"event_type": "invoice.paid", "payload": {"data": {"amount": 1200}}},
                {"code": "function handler(webhook) { return {cancel: true}; }"},
            ]
        }
    )

    payload: Any = Field(
        None,
        description="The webhook's `payload` the code gets; left out, a sample body "
        '(`{"id", "type", "timestamp", "data": {}}`).',
    )
    event_type: EventType | None = Field(
        None, description="The webhook's `event_type`; left out, `webhook.test`."
    )
    code: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_CODE_CHARS,
        description="Code to run instead of the saved transformation (nothing is saved).",
    )

    @field_validator("payload")
    @classmethod
    def _check_payload(cls, value: Any) -> Any:
        check_json_value(value)
        return value


class TransformationTested(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "result": {
                        "method": "POST",
                        "url": "https://billing.example.com/webhooks",
                        "headers": {},
                        "payload": {"amount": 1200},
                    },
                    "error": None,
                },
                {"result": None, "error": "line 2: TypeError: Cannot read properties of undefined"},
            ]
        }
    )

    result: dict[str, Any] | None = Field(
        description="What the code made of it, as it would be sent (`method`, `url`, "
        '`headers`, `payload`), or `{"cancel": true}`; null when it failed.'
    )
    error: str | None = Field(
        description="Why it failed (the JavaScript error, a time or memory limit, or a "
        "result of the wrong shape); null when it did not."
    )


async def try_on_endpoint(
    session: AsyncSession,
    endpoint_id: str,
    body: TransformationTest,
    settings: Settings,
    box: SecretBox,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """Run the endpoint's transformation (or `body.code`) on a sample; nothing is sent."""
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    code = body.code or endpoint.transformation
    if code is None:
        raise Invalid(
            "the endpoint has no transformation: send one as `code`", loc=("body", "code")
        )
    event_type = body.event_type or "webhook.test"
    if body.payload is None:
        payload = event_body("evt_test", event_type, utcnow(), "{}")
    else:
        payload = json.dumps(body.payload, separators=(",", ":"), ensure_ascii=False).encode()
    request = Outgoing("POST", endpoint.url, box.open_headers(endpoint.headers), payload)
    try:
        outgoing = await transformed(code, request, event_type, settings.transform_timeout_ms)
    except TransformError as exc:
        return {"result": None, "error": str(exc)}
    if outgoing is None:
        return {"result": {"cancel": True}, "error": None}
    return {
        "result": {
            "method": outgoing.method,
            "url": outgoing.url,
            "headers": outgoing.headers,
            "payload": json.loads(outgoing.body),
        },
        "error": None,
    }
