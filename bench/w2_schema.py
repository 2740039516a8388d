"""W2 with the event-type catalogue: publish held with the event's data checked against a
catalogued 20-field schema, against the same publish of a type that is not catalogued,
in the same run on the same stack (target: at least 0.9 of it).

Both searches send the same 20-field data; only the type differs, so the ratio is the
cost of the catalogue: reading the type's row in each batch, and validating.
"""

from __future__ import annotations

import json
from typing import Any

from bench import ledger, ratesearch
from bench.context import Run
from bench.harness import Stack
from bench.loadgen import Request
from bench.report import Row
from bench.w2_compare import Requests, api_cpu, search, warm_up

# Two types of each kind: each search has its own, so that each ledger counts its own.
CATALOGUED = ("w2s.order.paid", "w2s.order.again")
PLAIN = ("w2p.order.paid", "w2p.order.again")
# Published before the searches, one of each kind (the second is catalogued).
WARM_UP = ("w2w.order.plain", "w2w.order.checked")
# The API's CPU per publish, at a rate it holds even on a busy machine: less noisy than
# the held rate, which moves with whatever else runs. One of each kind again.
CPU_TYPES = ("w2c.order.plain", "w2c.order.checked")
CPU_RATE = 200

_STRINGS = ("order", "customer", "currency", "country", "city", "postcode", "email", "sku")
_INTEGERS = ("amount", "tax", "discount", "quantity", "shipping")
_NUMBERS = ("weight", "rate")
_BOOLEANS = ("gift", "express", "paid")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        **{name: {"type": "string", "minLength": 1, "maxLength": 64} for name in _STRINGS},
        **{name: {"type": "integer", "minimum": 0} for name in _INTEGERS},
        **{name: {"type": "number", "minimum": 0} for name in _NUMBERS},
        **{name: {"type": "boolean"} for name in _BOOLEANS},
        "status": {"enum": ["pending", "paid", "refunded"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
    },
    "required": ["order", "customer", "amount", "currency", "status"],
    "additionalProperties": False,
}
assert len(SCHEMA["properties"]) == 20


def event_data(i: int) -> dict[str, Any]:
    """Data of event i that meets SCHEMA, every field filled."""
    return {
        **{name: f"{name}_{i:08d}" for name in _STRINGS},
        **{name: 1200 + i % 100 for name in _INTEGERS},
        **{name: 1.5 for name in _NUMBERS},
        **{name: i % 2 == 0 for name in _BOOLEANS},
        "status": "paid",
        "tags": ["bench", "w2"],
    }


def publish_requests(api: str, auth: dict[str, str], event_type: str, n: int) -> list[Request]:
    headers = {**auth, "Content-Type": "application/json"}
    return [
        Request(
            f"{api}/v1/events",
            json.dumps({"type": event_type, "data": event_data(i)}).encode(),
            headers,
        )
        for i in range(n)
    ]


def _requests(stack: Stack) -> Requests:
    return lambda event_type, n: publish_requests(stack.api, stack.auth, event_type, n)


def _cpu_ms(run: Run, stack: Stack, event_type: str) -> float:
    """The API process's CPU per publish of `event_type`, in ms, at CPU_RATE."""
    n = int(CPU_RATE * 5 * run.sizes.step_seconds)
    used, done = api_cpu(stack, publish_requests(stack.api, stack.auth, event_type, n), CPU_RATE)
    failed = sum(not r.ok for r in done.results)
    assert not failed, f"{failed} of {n} publishes of {event_type} failed"
    print(f"  API CPU per publish of {event_type}: {used / n * 1000:.3f} ms ({n} at {CPU_RATE}/s)")
    return used / n * 1000


def run_w2_schema(run: Run) -> list[Row]:
    with Stack(run.dir, "w2s") as stack:
        for name in (*CATALOGUED, WARM_UP[1], CPU_TYPES[1]):
            stack.admin(
                "POST",
                "/v1/event-types",
                json={"name": name, "schema": SCHEMA, "examples": [event_data(0)]},
            )
        for event_type in (*PLAIN, *CATALOGUED):
            stack.endpoints([run.receiver.url("w2s", event_type, "e0")], event_type)
        warm_up(_requests(stack), WARM_UP)
        # Each twice, in the order A B B A (so that neither always follows the other, whose
        # rows and load it would inherit), and the better run of each compared: a slow
        # spell of the machine (others share it) then counts against neither.
        searches: dict[str, tuple[ratesearch.Search, ledger.Ledger]] = {}
        for event_type in (PLAIN[0], CATALOGUED[0], CATALOGUED[1], PLAIN[1]):
            searches[event_type] = search(
                run, stack, "W2 schema", event_type, _requests(stack), f"/w2s/{event_type}"
            )
        # CPU, also A B B A, each kind's two runs added up.
        cpu = dict.fromkeys(CPU_TYPES, 0.0)
        for event_type in (CPU_TYPES[0], CPU_TYPES[1], CPU_TYPES[1], CPU_TYPES[0]):
            cpu[event_type] += _cpu_ms(run, stack, event_type) / 2
    plain_held = [searches[t][0].held for t in PLAIN]
    checked_held = [searches[t][0].held for t in CATALOGUED]
    best = max((searches[t][0] for t in CATALOGUED), key=lambda s: s.held)
    broken = not all(book.ok for _, book in searches.values())
    note = f"p99 {best.best.run.latency(99) * 1000:.1f} ms" if best.best else "no rate held"
    note += (
        f"; runs held {' / '.join(f'{h:,.0f}' for h in checked_held)} with the schema, "
        f"{' / '.join(f'{h:,.0f}' for h in plain_held)} without"
    )
    if broken:
        note += "; ledger broken"
    return [
        Row(
            "W2 publish held, data checked against a 20-field schema",
            max(checked_held),
            max(plain_held),
            "W2 same data, type not catalogued",
            target=(">=", 0.9),
            void=broken,
            note=note,
            details={
                t: {**search.summary(), "ledger": book.summary()}
                for t, (search, book) in searches.items()
            },
        ),
        Row(
            "W2 API CPU per publish, data checked against the schema",
            cpu[CPU_TYPES[1]],
            cpu[CPU_TYPES[0]],
            "same data, type not catalogued",
            unit=" ms",
            target=("<", 1.1),
            note=f"open loop at {CPU_RATE}/s, each kind twice (A B B A)",
            details={"cpu_ms": cpu},
        ),
    ]
