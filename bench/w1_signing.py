"""W1 with `hmac` signing: 10 endpoints per event, each signing with the `hmac` scheme,
against the same fan-out signed the Standard Webhooks way, in the same run on one stack
(target: at least 0.9 of it).

How the two are drained and compared: `w1_compare.py`.
"""

from __future__ import annotations

from bench.context import Run
from bench.harness import Stack
from bench.report import Row
from bench.w1_compare import compare_w1, rows

# The event id in `webhook-id`, where the bench's receivers read it to count arrivals.
HMAC = {"scheme": "hmac", "timestamp_header": "X-Webhook-Timestamp", "id_header": "webhook-id"}


def run_w1_signing(run: Run) -> list[Row]:
    with Stack(run.dir, "w1s") as stack:
        compared = compare_w1(run, stack, "w1s", {"signature": HMAC})
    return rows(compared, "each signing with hmac", "signed standard", 0.9)
