"""W2 with endpoint filters: publish held when 100 endpoints of the event's type each hold a
CEL filter, against publish when 100 endpoints are told apart by their type filters only,
in the same run on the same stack (target: at least 0.75 of it).

Both kinds deliver each event to one endpoint out of 100 and send the same 20-field
data, so the ratio is the cost of the filters: converting the event's variables once
and evaluating 100 expressions (`data.amount > 1000 && data.currency in [...] &&
data.shard == k`, true for k = 0 only), where the other kind matches 100 type filters.
Every search has its own type and its own 100 endpoints, of a tenant of its own
(its events' tenant), so that each publish reads those 100 and each ledger counts
its own. As in W2, no worker runs while the searches do; the deliveries stay
pending, which the ledgers count.
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

ENDPOINTS = 100
# Each search its own type; taken in turns, each kind twice.
FILTERED = ("w2f.pay.filtered", "w2f.pay.filtered2")
PLAIN = ("w2f.pay.typed", "w2f.pay.typed2")
# The CPU measure: events published at a rate any machine holds, in turns, each kind twice.
CPU_RATE = 200.0
CPU_SECONDS = 6.0
# Published before the searches (one endpoint each, the first with a filter).
WARM_UP = ("w2f.warm.filtered", "w2f.warm.typed")


def filter_of(k: int) -> str:
    return f'data.amount > 1000 && data.currency in ["EUR", "USD"] && data.shard == {k}'


def tenant_of(event_type: str) -> str:
    return f"bench-{event_type}"


def event_data(i: int) -> dict[str, Any]:
    """Twenty fields, as an order event has; `shard` 0, which the first endpoint takes."""
    return {
        "order": f"ord_{i:08d}",
        "customer": f"cus_{i % 977:06d}",
        "email": f"buyer{i % 977}@example.com",
        "amount": 1200 + i % 100,
        "tax": 228,
        "discount": 0,
        "currency": "EUR",
        "country": "DE",
        "city": "Berlin",
        "postcode": "10115",
        "quantity": 1 + i % 5,
        "weight": 1.5,
        "rate": 0.19,
        "gift": i % 2 == 0,
        "express": False,
        "paid": True,
        "status": "paid",
        "sku": f"sku_{i % 31}",
        "tags": ["bench", "w2"],
        "shard": 0,
    }


def publish_requests(api: str, auth: dict[str, str], event_type: str, n: int) -> list[Request]:
    headers = {**auth, "Content-Type": "application/json"}
    return [
        Request(
            f"{api}/v1/events",
            json.dumps(
                {"type": event_type, "data": event_data(i), "tenant_id": tenant_of(event_type)}
            ).encode(),
            headers,
        )
        for i in range(n)
    ]


def _subscribe(run: Run, stack: Stack, event_type: str, filtered: bool) -> None:
    """100 endpoints, of which only the first takes `event_type`'s events: by its filter
    (all are of the type), or by its type (the others are of types never published)."""
    for k in range(ENDPOINTS):
        body: dict[str, Any] = {
            "url": run.receiver.url("w2f", event_type, f"e{k}"),
            "tenant_id": tenant_of(event_type),
        }
        if filtered:
            body.update(event_types=[event_type], filter=filter_of(k))
        else:
            body.update(event_types=[event_type if k == 0 else f"{event_type}.other{k}"])
        stack.admin("POST", "/v1/endpoints", json=body)


def _requests(stack: Stack) -> Requests:
    return lambda event_type, n: publish_requests(stack.api, stack.auth, event_type, n)


def _cpu_per_event(stack: Stack, event_type: str, n: int) -> float:
    """The API process's CPU seconds per event published at CPU_RATE: what the filters
    cost, read on a machine others share as well as on a quiet one."""
    requests = publish_requests(stack.api, stack.auth, event_type, n)
    spent, done = api_cpu(stack, requests, CPU_RATE)
    ok = max(sum(r.ok for r in done.results), 1)
    print(
        f"  {event_type}: {ok} events at {CPU_RATE:.0f}/s, "
        f"{spent / ok * 1e6:.0f} µs of API CPU each"
    )
    return spent / ok


def _turns() -> list[str]:
    """One of each kind, then the other two in the other order: a run that follows
    another's thousands of inserts (PostgreSQL writing them out) is slower, and each
    kind is second once."""
    return [PLAIN[0], FILTERED[0], FILTERED[1], PLAIN[1]]


def run_w2_filters(run: Run) -> list[Row]:
    with Stack(run.dir, "w2f") as stack:
        for event_type in FILTERED:
            _subscribe(run, stack, event_type, filtered=True)
        for event_type in PLAIN:
            _subscribe(run, stack, event_type, filtered=False)
        for event_type, extra in zip(WARM_UP, ({"filter": filter_of(0)}, {}), strict=True):
            stack.admin(
                "POST",
                "/v1/endpoints",
                json={
                    "url": run.receiver.url("w2f", event_type, "e0"),
                    "event_types": [event_type],
                    "tenant_id": tenant_of(event_type),
                    **extra,
                },
            )
        warm_up(_requests(stack), WARM_UP)
        # In turns, each twice, the better of each kind compared: a slow spell of the
        # machine (others share it) then counts against neither.
        searches: dict[str, tuple[ratesearch.Search, ledger.Ledger]] = {}
        for event_type in _turns():
            searches[event_type] = search(run, stack, "W2 filters", event_type, _requests(stack))
        # After the ledgers: these events are not counted by them.
        n = int(CPU_RATE * CPU_SECONDS)
        cpu: dict[str, list[float]] = {"plain": [], "filtered": []}
        for event_type in _turns():
            kind = "filtered" if event_type in FILTERED else "plain"
            cpu[kind].append(_cpu_per_event(stack, event_type, n))
    plain_held = [searches[t][0].held for t in PLAIN]
    filtered_held = [searches[t][0].held for t in FILTERED]
    best = max((searches[t][0] for t in FILTERED), key=lambda s: s.held)
    broken = not all(book.ok for _, book in searches.values())
    note = f"p99 {best.best.run.latency(99) * 1000:.1f} ms" if best.best else "no rate held"
    note += (
        f"; runs held {' / '.join(f'{h:,.0f}' for h in filtered_held)} with {ENDPOINTS} "
        f"filters, {' / '.join(f'{h:,.0f}' for h in plain_held)} with type filters only"
    )
    if broken:
        note += "; ledger broken"
    plain_cpu, filtered_cpu = min(cpu["plain"]), min(cpu["filtered"])
    return [
        Row(
            f"W2 publish held, {ENDPOINTS} endpoints each with a CEL filter",
            max(filtered_held),
            max(plain_held),
            f"W2 same data, {ENDPOINTS} endpoints told apart by type",
            target=(">=", 0.75),
            void=broken,
            note=note,
            details={
                t: {**search.summary(), "ledger": book.summary()}
                for t, (search, book) in searches.items()
            },
        ),
        Row(
            f"W2 events per API CPU second, {ENDPOINTS} endpoints each with a CEL filter",
            1 / filtered_cpu,
            1 / plain_cpu,
            f"W2 same data, {ENDPOINTS} endpoints told apart by type",
            target=(">=", 0.75),
            note=f"API CPU per event {filtered_cpu * 1e6:.0f} µs with filters, "
            f"{plain_cpu * 1e6:.0f} µs without, at {CPU_RATE:.0f} events/s; the better of two "
            "runs of each",
            details={"cpu_per_event_seconds": cpu},
        ),
    ]
