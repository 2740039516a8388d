"""Event data against its type's JSON Schema: compiling, checking, and the compiled
schemas each process keeps.

The library is `jsonschema-rs` (Rust): it knows draft 2020-12, compiles the 20-field
schema of `bench/w2_schema.py` in 0.06 ms and validates its data in 1.4 µs, where
`fastjsonschema` (drafts 4 to 7 only) took 6.8 ms and 8.3 µs
(`python -m bench.schema_libs`). Schemas never fetch anything: a `$ref` outside the
schema is refused when it is saved.

Each process keeps what it read of a type (its version, whether it is archived, or
that it is not catalogued) for `CATALOGUE_CACHE_SECONDS`, as it does sources
(`inbound/sources.py`): a change made through this process applies at once (the routes
call `forget` after they commit); through another process or the CLI, within that
time. Reading the type's row for every batch instead cost 300 to 400 µs of the API's
CPU per batch, most of a small batch's cost, and halved W2 under a schema
(`python -m bench w2-schema`). A schema is compiled only when its `updated_at`
differs from the one compiled: once per process and per version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonschema_rs
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Invalid
from gateway.store.models import EventType, table

log = logging.getLogger("gateway.catalogue")

# How long a process trusts what it read of a type (see the module's docstring).
CATALOGUE_CACHE_SECONDS = 2.0
# Compiled schemas of this process: name -> (the row's updated_at, its validator).
_compiled: dict[str, tuple[datetime, jsonschema_rs.Validator | None]] = {}
# What this process read of each type: name -> (until when, the entry or None: not
# catalogued). Any name can be published, so it is bounded.
_known: dict[str, tuple[float, Catalogued | None]] = {}
_MAX_KNOWN = 10_000

_TYPES = table(EventType)
_VERSIONS = select(_TYPES.c.name, _TYPES.c.updated_at, _TYPES.c.archived_at).where(
    _TYPES.c.name.in_(bindparam("names", expanding=True))
)
_SCHEMAS = select(_TYPES.c.name, _TYPES.c.updated_at, _TYPES.c.data_schema).where(
    _TYPES.c.name.in_(bindparam("names", expanding=True))
)


class DataRefused(Invalid):
    """An event refused by the catalogue: data that fails its type's schema, or (strict
    mode) a type the catalogue does not have. `brief` says where and why without any
    of the data's values (for logs such as the inbound refusals)."""

    def __init__(self, detail: str, loc: tuple[str | int, ...], brief: str) -> None:
        super().__init__(detail, loc)
        self.brief = brief


@dataclass(frozen=True)
class Problem:
    """Where data fails a schema, and which rule it breaks."""

    path: tuple[str | int, ...]
    rule: str
    message: str

    def where(self, root: str) -> str:
        """The path written as JSON paths are: `data.items[0].sku`."""
        text = root
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text

    def sentence(self, root: str) -> str:
        return f"{self.where(root)}: {self.message} (rule: {self.rule})"


def compile_schema(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator for a draft 2020-12 schema (or the draft its `$schema` names);
    ValueError naming where the schema is wrong. `format` is checked, not only noted."""
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)
    except jsonschema_rs.ValidationError as exc:
        message = str(exc).split("\n", 1)[0]
        where = Problem(tuple(exc.instance_path), "", "").where("schema")
        raise ValueError(f"{where} is not a valid JSON Schema: {message}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # what the library cannot take
        raise ValueError(f"schema is not a valid JSON Schema: {exc}") from None


def first_problem(validator: jsonschema_rs.Validator, data: Any) -> Problem | None:
    """The first way `data` fails, or None when it is valid (checked fast first)."""
    if validator.is_valid(data):
        return None
    error = next(validator.iter_errors(data), None)
    if error is None:
        return None
    schema_path = list(error.schema_path)
    rule = next((str(p) for p in reversed(schema_path) if isinstance(p, str)), "schema")
    return Problem(tuple(error.instance_path), rule, error.message)


@dataclass(frozen=True)
class Catalogued:
    """A type as publishing sees it."""

    archived: bool
    validator: jsonschema_rs.Validator | None  # None: no schema, any data


async def lookup(session: AsyncSession, names: Iterable[str]) -> dict[str, Catalogued]:
    """The catalogue's entries for these types (absent: not catalogued), as this process
    last read them (see the module's docstring)."""
    now = time.monotonic()
    found: dict[str, Catalogued] = {}
    expired = []
    for name in set(names):
        cached = _known.get(name)
        if cached is None or cached[0] <= now:
            expired.append(name)
        elif cached[1] is not None:
            found[name] = cached[1]
    if expired:
        read = await _read(session, sorted(expired))
        if len(_known) > _MAX_KNOWN:
            _known.clear()
        for name in expired:
            _known[name] = (now + CATALOGUE_CACHE_SECONDS, read.get(name))
        found.update(read)
    return found


def forget(names: Iterable[str]) -> None:
    """Types changed through this process: read them again at the next publish."""
    for name in names:
        _known.pop(name, None)


async def _read(session: AsyncSession, wanted: list[str]) -> dict[str, Catalogued]:
    """The types' rows, their schemas compiled when their version is new here."""
    conn = await session.connection()
    rows = (await conn.execute(_VERSIONS, {"names": wanted})).all()
    stale = [
        r.name
        for r in rows
        if r.archived_at is None and _compiled.get(r.name, (None, None))[0] != r.updated_at
    ]
    if stale:
        if len(_compiled) > _MAX_KNOWN:
            _compiled.clear()
        for name, updated_at, schema in (await conn.execute(_SCHEMAS, {"names": stale})).all():
            _compiled[name] = (updated_at, _compiled_or_none(name, schema))
    return {
        r.name: Catalogued(
            archived=r.archived_at is not None,
            validator=None if r.archived_at is not None else _compiled[r.name][1],
        )
        for r in rows
    }


def _compiled_or_none(name: str, schema: dict[str, Any] | None) -> jsonschema_rs.Validator | None:
    if schema is None:
        return None
    try:
        return compile_schema(schema)
    except ValueError as exc:
        # Saved schemas compiled when saved; one that no longer does (a library upgrade)
        # must not stop every publish of its type.
        log.warning("the schema of event type %s no longer compiles, not checked: %s", name, exc)
        return None


def refusal(
    entry: Catalogued | None, mode: str, event_type: str, data: dict[str, Any]
) -> DataRefused | None:
    """Why this event may not be published, or None. `mode` is GATEWAY_EVENT_TYPES."""
    if entry is None or entry.archived:
        if mode != "strict":
            return None
        state = "is archived" if entry is not None else "is not in the event-type catalogue"
        detail = (
            f"event type {event_type!r} {state}, and GATEWAY_EVENT_TYPES is strict: "
            "add it with POST /v1/event-types"
        )
        return DataRefused(detail, ("body", "type"), detail)
    if entry.validator is None:
        return None
    problem = first_problem(entry.validator, data)
    if problem is None:
        return None
    return DataRefused(
        f"{problem.sentence('data')}, in the schema of event type {event_type!r}",
        ("body", "data", *problem.path),
        f"{problem.where('data')} fails rule {problem.rule!r} of the schema of event type "
        f"{event_type!r}",
    )
