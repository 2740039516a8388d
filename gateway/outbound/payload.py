"""The body an endpoint receives: `{"id", "type", "timestamp", "data"}`, built once per event."""

from __future__ import annotations

import json

from gateway.store.models import Event
from gateway.timeutil import rfc3339


def event_body(event: Event) -> bytes:
    # `data` is stored as the exact JSON text that was published, so it is spliced
    # in rather than re-serialised: every attempt signs the same bytes.
    head = json.dumps(
        {"id": event.id, "type": event.type, "timestamp": rfc3339(event.created_at)},
        separators=(",", ":"),
    )
    return f'{head[:-1]},"data":{event.data}}}'.encode()
