"""W2, ingest: the publish rate the API holds with p99 under 50 ms and no errors, and
the same for `POST /in/{id}` with Stripe-signed requests; both against Y2, and publish
against Y4 too (the same rows stored and the job queued, without the framework).

The same open-loop search as Y2 (ratesearch.py). Each event fans out to one
endpoint; no worker runs meanwhile, so that the API has the machine to itself as
Y2's route does (the deliveries stay pending, which the ledger counts). Stripe
signatures are made with the `stripe` package, each request a new Stripe event id,
so none is answered as a duplicate.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence

import stripe

from bench import ledger, loadgen, ratesearch, y2_ingest, y4_ingest
from bench.context import Run
from bench.harness import Stack
from bench.loadgen import Request
from bench.ratesearch import Search
from bench.report import Row

STRIPE_SECRET = "whsec_bench_secret"


def stripe_requests(
    url: str,
    event_type: str,
    n: int,
    numbers: itertools.count[int],
) -> list[Request]:
    requests = []
    for i in itertools.islice(numbers, n):
        body = json.dumps(
            {
                "id": f"evt_bench_{i:010d}",
                "object": "event",
                "type": event_type,
                "data": {"object": {"id": f"in_{i:010d}", "amount": 1200, "currency": "eur"}},
            }
        )
        header = stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)
        requests.append(
            Request(
                url, body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}
            )
        )
    return requests


def held_row(
    figure: str,
    search: Search,
    y2: Search,
    target: float,
    book: ledger.Ledger,
    yardstick: str = "Y2",
) -> Row:
    best = search.best
    note = f"p99 {best.run.latency(99) * 1000:.1f} ms" if best else "no rate held"
    if search.generator_limited:
        note += "; the generator fell behind first"
    if not book.ok:
        note += "; ledger broken"
    return Row(
        figure,
        search.held,
        y2.held,
        yardstick,
        target=(">=", target),
        void=not book.ok,
        note=note,
        details={**search.summary(), "ledger": book.summary()},
    )


def _search(
    run: Run,
    stack: Stack,
    what: str,
    make: Callable[[int], Sequence[Request]],
    event_type: str,
    group: str,
) -> tuple[Search, ledger.Ledger]:
    print(f"  {what}:")
    search = ratesearch.search(make, run.sizes.step_seconds, run.sizes.refine_steps)
    results = search.results()
    if stack.embedded:  # it delivers meanwhile: let it finish before the books are read
        run.receiver.arrivals.wait_for(
            group, sum(r.ok for r in results), 120, stack.check_alive, stall=15
        )
    book = ledger.check(
        f"W2 {what}",
        stack.db_url,
        [event_type],
        sum(r.ok for r in results),
        1,
        run.receiver.arrivals,
        run.receiver.base,
        sum(r.status == 0 for r in results),
    )
    return search, book


def search_publish(run: Run, stack: Stack, event_type: str) -> tuple[Search, ledger.Ledger]:
    stack.endpoints([run.receiver.url("w2", event_type, "e0")], event_type)

    def make(n: int) -> list[Request]:
        return loadgen.publish_requests(stack.api, stack.auth, event_type, n)

    return _search(run, stack, "POST /v1/events", make, event_type, f"/w2/{event_type}")


def run_w2(run: Run) -> list[Row]:
    y2 = y2_ingest.ceiling(run)
    y4 = y4_ingest.ceiling(run)
    with Stack(run.dir, "w2") as stack:
        publish, publish_book = search_publish(run, stack, "w2.publish")
        source = stack.admin(
            "POST",
            "/v1/sources",
            json={"name": "bench-stripe", "provider": "stripe", "secret": STRIPE_SECRET},
        )
        stack.admin(
            "POST",
            "/v1/endpoints",
            json={
                "url": run.receiver.url("w2", "inbound", "e0"),
                "source_ids": [source["id"]],
                "event_types": ["w2in.*"],
            },
        )
        url = stack.api + source["ingest_path"]
        numbers = itertools.count()
        inbound, inbound_book = _search(
            run,
            stack,
            "POST /in/{id} (Stripe)",
            lambda n: stripe_requests(url, "w2in.paid", n, numbers),
            "w2in.paid",
            "/w2/inbound",
        )
    return [
        held_row("W2 publish held (p99 < 50 ms, 0 errors)", publish, y2, 0.5, publish_book),
        held_row("W2 publish held, against durable ingest", publish, y4, 0.6, publish_book, "Y4"),
        held_row("W2 /in/{id} Stripe-signed held", inbound, y2, 0.4, inbound_book),
    ]
