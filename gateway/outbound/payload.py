"""The body an endpoint receives: `{"id", "type", "timestamp", "data"}`, built once per event."""

from __future__ import annotations

import json
from datetime import datetime

from gateway.timeutil import rfc3339


def event_body(event_id: str, event_type: str, created_at: datetime, data: str) -> bytes:
    # `data` is stored as the exact JSON text that was published, so it is spliced
    # in rather than re-serialised: every attempt signs the same bytes.
    head = json.dumps(
        {"id": event_id, "type": event_type, "timestamp": rfc3339(created_at)},
        separators=(",", ":"),
    )
    return f'{head[:-1]},"data":{data}}}'.encode()
