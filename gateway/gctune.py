"""Keep the garbage collector's full passes off the delivery path.

A worker or API process holds a large heap of objects that live as long as it
does (modules, SQLAlchemy and pydantic machinery, FastAPI routes). CPython's
full collection walks all of them: measured in a worker under load, one took
about 80 ms, every second or so, and collected nothing, while every job and
request in the process waited. `gc.freeze()` once started moves that heap out of
the collector's sight, and a higher first threshold makes collections rarer;
cyclic garbage is still collected.
"""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default is 700).
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Call once the process has started: what exists now lives as long as it."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
