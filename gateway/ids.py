"""Opaque, time-sortable identifiers with a type prefix (`evt_01J...`)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: sorts as it reads


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_last = (0, 0)


def new_id(prefix: str) -> str:
    """`prefix_` + 10 chars of milliseconds + 16 chars of randomness (a ULID).

    Within one process ids are strictly increasing, also within a millisecond
    (the random part is incremented), so "newest first" holds for them.
    """
    global _last
    millis = time.time_ns() // 1_000_000
    last_millis, last_rand = _last
    if millis <= last_millis:
        millis, rand = last_millis, last_rand + 1
    else:
        rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
    _last = (millis, rand)
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


def first_id_at(prefix: str, millis: int) -> str:
    """The smallest id of `prefix` made at `millis` (ms since the epoch): ids made before
    it sort below it, ids made at or after it do not."""
    return f"{prefix}_{_encode(millis, 10)}{_ALPHABET[0] * 16}"


def id_millis(id_: str) -> int:
    """The millisecond an id was made at, read back from its first 10 characters."""
    value = 0
    for char in id_.partition("_")[2][:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value
