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

CATALOGUED = "w2s.order.paid"
PLAIN = "w2p.order.paid"

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


def _search(run: Run, stack: Stack, event_type: str) -> tuple[ratesearch.Search, ledger.Ledger]:
    print(f"  POST /v1/events of {event_type}:")
    search = ratesearch.search(
        lambda n: publish_requests(stack.api, stack.auth, event_type, n),
        run.sizes.step_seconds,
        run.sizes.refine_steps,
    )
    results = search.results()
    if stack.embedded:
        run.receiver.arrivals.wait_for(
            f"/w2s/{event_type}", sum(r.ok for r in results), 120, stack.check_alive, stall=15
        )
    book = ledger.check(
        f"W2 schema {event_type}",
        stack.db_url,
        [event_type],
        sum(r.ok for r in results),
        1,
        run.receiver.arrivals,
        run.receiver.base,
        sum(r.status == 0 for r in results),
    )
    return search, book


def run_w2_schema(run: Run) -> list[Row]:
    with Stack(run.dir, "w2s") as stack:
        stack.admin(
            "POST",
            "/v1/event-types",
            json={"name": CATALOGUED, "schema": SCHEMA, "examples": [event_data(0)]},
        )
        for event_type in (PLAIN, CATALOGUED):
            stack.endpoints([run.receiver.url("w2s", event_type, "e0")], event_type)
        # The yardstick first, then the catalogued type, then the yardstick again: the
        # better of its two runs is the one compared, so a slow spell of the machine
        # does not count against the catalogue.
        plain, plain_book = _search(run, stack, PLAIN)
        checked, checked_book = _search(run, stack, CATALOGUED)
        again, again_book = _search(run, stack, PLAIN)
    if again.held > plain.held:
        plain, plain_book = again, again_book
    books = (plain_book, checked_book)
    best = checked.best
    note = f"p99 {best.run.latency(99) * 1000:.1f} ms" if best else "no rate held"
    note += f"; uncatalogued runs held {plain.held:,.0f} and {again.held:,.0f}/s"
    if not all(b.ok for b in books):
        note += "; ledger broken"
    return [
        Row(
            "W2 publish held, data checked against a 20-field schema",
            checked.held,
            plain.held,
            "W2 same data, type not catalogued",
            target=(">=", 0.9),
            void=not all(b.ok for b in books),
            note=note,
            details={
                "catalogued": checked.summary(),
                "plain": plain.summary(),
                "ledger": [b.summary() for b in books],
            },
        )
    ]
