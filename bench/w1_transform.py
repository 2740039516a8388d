"""W1 with transformations: 10 endpoints per event, each with a trivial JavaScript
transformation, against the same fan-out without any, in the same run on one stack
(target: at least 0.7 of it).

How the two are drained and compared: `w1_compare.py`. The transformation adds a
header and returns the webhook: what it costs is the call into V8 (and its answer),
not the script.
"""

from __future__ import annotations

from bench.context import Run
from bench.harness import Stack
from bench.report import Row
from bench.w1_compare import compare_w1, rows

TRIVIAL = "function handler(webhook) { webhook.headers['x-bench'] = '1'; return webhook; }"


def run_w1_transform(run: Run) -> list[Row]:
    with Stack(run.dir, "w1t") as stack:
        compared = compare_w1(run, stack, "w1t", {"transformation": TRIVIAL})
    return rows(compared, "each with a transformation", "without", 0.7)
