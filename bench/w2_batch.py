"""W2 batch: events per second published through `POST /v1/events/batch` (500 an
request) against the same events as single `POST /v1/events` requests, in the same
stack and run; the yardstick is the single publish.

Both closed loop, as a backlog is published: singles by 32 senders (the API's batcher
groups them into shared transactions, so this is single publishing at its best),
batches by 2. The two take turns A B B A, so that a drift of the shared machine falls
on both. Each event fans out to one endpoint; no worker runs meanwhile.
"""

from __future__ import annotations

import json

from bench import loadgen
from bench.context import Run
from bench.harness import Stack
from bench.loadgen import Request
from bench.report import Row

BATCH = 500
SINGLE_SENDERS = 32
BATCH_SENDERS = 2


def _batch_requests(api: str, auth: dict[str, str], event_type: str, n: int) -> list[Request]:
    """The events of `publish_requests`, 500 to a body."""
    singles = loadgen.publish_requests(api, auth, event_type, n)
    events = [json.loads(r.body) for r in singles]
    return [
        Request(
            f"{api}/v1/events/batch",
            json.dumps({"events": events[i : i + BATCH]}).encode(),
            singles[0].headers,
        )
        for i in range(0, len(events), BATCH)
    ]


def _rate(run: loadgen.LoadRun, per_request: int) -> float:
    if run.errors:
        raise RuntimeError(f"{run.errors} publishes failed")
    return per_request * len(run.results) / run.elapsed


def run_w2_batch(run: Run) -> list[Row]:
    events = max(BATCH * 4, run.sizes.w1_deliveries // 2)
    event_type = "w2.batch"
    singles: list[float] = []
    batches: list[float] = []
    with Stack(run.dir, "w2-batch") as stack:
        stack.endpoints([run.receiver.url("w2", event_type, "e0")], event_type)

        async def measure(batched: bool) -> float:
            async with loadgen.session() as client:
                if batched:
                    requests = _batch_requests(stack.api, stack.auth, event_type, events)
                    found = await loadgen.closed_loop(client, requests, BATCH_SENDERS)
                    return _rate(found, BATCH)
                requests = loadgen.publish_requests(stack.api, stack.auth, event_type, events)
                return _rate(await loadgen.closed_loop(client, requests, SINGLE_SENDERS), 1)

        for batched in (False, True, True, False):
            rate = loadgen.run(measure(batched))
            (batches if batched else singles).append(rate)
            print(f"    {'batch ' if batched else 'single'}: {rate:,.0f} events/s")
    single = sum(singles) / len(singles)
    batch = sum(batches) / len(batches)
    return [
        Row(
            f"W2 batch publish, {BATCH} an request (events/s)",
            batch,
            single,
            f"single publishes ({SINGLE_SENDERS} senders)",
            target=(">=", 3.0),
            note=f"{events} events each way, A B B A: single "
            + " ".join(f"{r:.0f}" for r in singles)
            + ", batch "
            + " ".join(f"{r:.0f}" for r in batches),
            details={"single_per_s": singles, "batch_per_s": batches, "events": events},
        )
    ]
