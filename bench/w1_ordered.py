"""W1 to ordered endpoints: 10 endpoints per event, every event with one of 1,000
ordering keys (two events each), the endpoints `ordered`, against the same backlog
to the same endpoints unordered, in the same run on one stack (target: at least 0.5).

And the hot key: every event with one key. An ordered endpoint then has one delivery
in flight at a time, each sent once the one before has been answered and recorded: its
rate is one over that round trip, whatever the machine could do beside. That is the
price of order, reported against the same backlog unordered, with no target.

How the two kinds are drained and compared: `w1_compare.py`.
"""

from __future__ import annotations

from bench.context import QUICK, Run
from bench.harness import Stack
from bench.report import Row
from bench.w1_compare import ORDER, compare_w1, rows

KEYS = 1_000
EVENTS_PER_KEY = 2
HOT_EVENTS = 300  # one key: 3,000 deliveries, ten at a time at most


def run_w1_ordered(run: Run) -> list[Row]:
    # The quick run drains A B B A once; the full one twice.
    order = ORDER[:4] if run.sizes == QUICK else ORDER
    with Stack(run.dir, "w1o") as stack:
        keyed = compare_w1(run, stack, "w1o", {"ordered": True}, KEYS * EVENTS_PER_KEY, KEYS, order)
        hot = compare_w1(run, stack, "w1h", {"ordered": True}, HOT_EVENTS, 1, ORDER[:4])
    found = rows(keyed, f"ordered, {KEYS:,} keys", "unordered, same keys", 0.5)
    best, plain = hot.with_change, hot.without
    found.append(
        Row(
            "W1 10 ep/event, ordered, one hot key",
            best.rate,
            plain.rate,
            "W1 10 ep/event unordered, same events",
            void=not hot.ok,
            note=f"no target: one delivery in flight per endpoint at a time is the cost of "
            f"order, {best.rate / 10:,.0f} deliveries/s per endpoint here (one send, "
            f"record and dispatch of the next, {10_000 / max(best.rate, 1e-9):,.1f} ms "
            "each); better of 2 drains each",
        )
    )
    return found
