"""A source's transformation: the event a verified request becomes, as its JavaScript maps it.

`handler(webhook)` gets `{"method", "url", "headers", "payload", "event_type"}`, the
payload being the event's data as the verifier read it, and returns it with
`payload` (a JSON object: the event's data) and `event_type` changed, or with
`"cancel": true` to drop the request. It runs after verification (on what the
provider provably sent) and before anything is stored or routed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Invalid
from gateway.inbound.sources import get_source, ingest_path
from gateway.outbound.transforms import TransformationTest
from gateway.transform import TransformError, runtime
from gateway.validation import check_json_value


async def mapped(
    code: str,
    path: str,
    headers: dict[str, str],
    data: dict[str, Any],
    event_type: str,
    timeout_ms: int,
) -> tuple[str, dict[str, Any]] | None:
    """The event's (type, data) as the code maps them; None when it cancels.

    TransformError when the code fails or answers something that is not an event; the
    type is returned as the code gave it (the caller puts it in the gateway's alphabet).
    """
    argument = json.dumps(
        {
            "method": "POST",
            "url": path,
            "headers": headers,
            "payload": data,
            "event_type": event_type,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    result = await runtime(timeout_ms).run(code, argument)
    cancel = result.get("cancel", False)
    if not isinstance(cancel, bool):
        raise TransformError("result: cancel must be true or false")
    if cancel:
        return None
    payload = result.get("payload")
    if not isinstance(payload, dict):
        raise TransformError("result: payload must be an object (the event's data)")
    try:
        check_json_value(payload)
    except ValueError as exc:
        raise TransformError(f"result: payload: {exc}") from None
    new_type = result.get("event_type", event_type)
    if not isinstance(new_type, str) or not new_type.strip():
        raise TransformError("result: event_type must be a non-empty string")
    return new_type, payload


async def try_on_source(
    session: AsyncSession, source_id: str, body: TransformationTest, timeout_ms: int
) -> dict[str, Any]:
    """Run the source's transformation (or `body.code`) on a sample; nothing is stored."""
    source = await get_source(session, source_id)
    code = body.code or source.transformation
    if code is None:
        raise Invalid("the source has no transformation: send one as `code`", loc=("body", "code"))
    payload = body.payload if body.payload is not None else {}
    if not isinstance(payload, dict):
        raise Invalid(
            "payload must be an object (a received event's data)", loc=("body", "payload")
        )
    try:
        result = await mapped(
            code,
            ingest_path(source),
            {"content-type": "application/json"},
            payload,
            body.event_type or "webhook.test",
            timeout_ms,
        )
    except TransformError as exc:
        return {"result": None, "error": str(exc)}
    if result is None:
        return {"result": {"cancel": True}, "error": None}
    return {"result": {"event_type": result[0], "payload": result[1]}, "error": None}
