"""The body an endpoint receives: `{"id", "type", "timestamp", "data"}`, built once per
event, with `"previous_data"` after `data` when the event has it (an update's data
before the change)."""

from __future__ import annotations

import json
from datetime import datetime

from gateway.timeutil import rfc3339


def event_body(
    event_id: str,
    event_type: str,
    created_at: datetime,
    data: str,
    previous_data: str | None = None,
) -> bytes:
    # `data` and `previous_data` are stored as the exact JSON text that was published,
    # so they are spliced in rather than re-serialised: every attempt signs the same
    # bytes. Without `previous_data` the body is byte for byte what it always was.
    head = json.dumps(
        {"id": event_id, "type": event_type, "timestamp": rfc3339(created_at)},
        separators=(",", ":"),
    )
    if previous_data is None:
        return f'{head[:-1]},"data":{data}}}'.encode()
    return f'{head[:-1]},"data":{data},"previous_data":{previous_data}}}'.encode()
