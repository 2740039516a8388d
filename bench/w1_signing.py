"""W1 with `hmac` signing: 10 endpoints per event, each signing with the `hmac` scheme,
against the same fan-out signed the Standard Webhooks way, in the same run on one stack
(target: at least 0.9 of it).

The drains take turns in the order A B B A (standard, hmac, hmac, standard, ...), each
kind draining its own backlog, and the better drain of each kind is compared: a slow
spell of the machine then costs both kinds alike.
"""

from __future__ import annotations

from bench import ledger
from bench.context import Run
from bench.drain import Drain, backlog_drain
from bench.harness import Stack
from bench.report import Row

PER_EVENT = 10
# A B B A, twice: each kind drains four times.
ORDER = ("standard", "hmac", "hmac", "standard") * 2
# The event id in `webhook-id`, where the bench's receivers read it to count arrivals.
HMAC = {"scheme": "hmac", "timestamp_header": "X-Webhook-Timestamp", "id_header": "webhook-id"}


def _drain(run: Run, stack: Stack, name: str, hmac: bool) -> tuple[Drain, bool]:
    event_type = f"w1s.{name}"
    ids = stack.endpoints(
        [run.receiver.url("w1s", name, f"e{i}") for i in range(PER_EVENT)], event_type
    )
    if hmac:
        for endpoint_id in ids:
            stack.admin("PATCH", f"/v1/endpoints/{endpoint_id}", json={"signature": HMAC})
    drain = backlog_drain(
        stack,
        run.receiver.arrivals,
        event_type,
        max(1, run.sizes.w1_deliveries // PER_EVENT),
        f"/w1s/{name}",
        PER_EVENT,
        1,
    )
    book = ledger.check(
        f"W1 {name}",
        stack.db_url,
        [event_type],
        drain.published,
        PER_EVENT,
        run.receiver.arrivals,
        run.receiver.base,
        drain.unanswered,
    )
    run.details[f"w1s_{name}"] = {**drain.summary(), "ledger": book.summary()}
    return drain, book.ok


def run_w1_signing(run: Run) -> list[Row]:
    drains: dict[str, list[tuple[Drain, bool]]] = {"standard": [], "hmac": []}
    with Stack(run.dir, "w1s") as stack:
        for turn, kind in enumerate(ORDER):
            drains[kind].append(_drain(run, stack, f"{kind}{turn}", kind == "hmac"))
    standard = max((d for d, _ok in drains["standard"]), key=lambda d: d.rate)
    best = max((d for d, _ok in drains["hmac"]), key=lambda d: d.rate)
    ok = all(good for kind in drains.values() for _d, good in kind)
    turns = len(drains["hmac"])
    return [
        Row(
            "W1 10 ep/event, each signing with hmac",
            best.rate,
            standard.rate,
            "W1 10 ep/event signed standard",
            target=(">=", 0.9),
            void=not ok,
            note=f"better of {turns} drains each, in turns A B B A; worker CPU "
            f"{best.cpu_ms:.3f} ms per delivery against {standard.cpu_ms:.3f} ms",
        ),
        Row(
            "W1 worker CPU per delivery, signing with hmac",
            best.cpu_ms,
            standard.cpu_ms,
            "standard",
            unit="ms",
            void=not ok,
        ),
    ]
