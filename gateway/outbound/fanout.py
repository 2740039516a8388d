"""Publishing: store events and one delivery per matching endpoint, commit, then dispatch.

The commit comes first: once it returns, the event will be delivered whatever
happens to the queue, because the sweeper finds pending deliveries in the
database. Dispatch afterwards only makes it fast.

`publish_many` stores a batch of events in one transaction (see `batcher.py`,
which groups concurrent publishes), each item succeeding or failing on its own;
`publish` is the batch of one. `publish_all` stores a batch all or nothing, for
`POST /v1/events/batch`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from gateway.db import lost_a_race
from gateway.errors import Conflict, Invalid
from gateway.ids import new_id
from gateway.metrics import EVENTS, FILTER_FAILURES, event_type_label
from gateway.outbound import dataschema, filters
from gateway.outbound.matching import source_matches, type_matches
from gateway.queue.dispatch import Dispatcher, dispatch_events, dispatch_leased
from gateway.store.models import (
    Delivery,
    DeliveryStatus,
    Endpoint,
    Event,
    OrderingKey,
    table,
)
from gateway.timeutil import utcnow
from gateway.tracing import current_parent

log = logging.getLogger("gateway.fanout")

# Stores of one batch before its items are stored one by one.
STORE_TRIES = 3

Subscription = Row[str, list[str] | None, list[str] | None, bool, str | None, str | None]


@dataclass
class Received:
    """The request an inbound event came in, kept beside it."""

    body: bytes
    headers: dict[str, str]
    verification: str


@dataclass
class Publish:
    """One event to publish, as the API or an inbound source asked for it.

    `idempotency_key` makes a repeat return the first event. A key from the API
    must repeat the same request (409 otherwise); a key from an inbound source
    (a provider's delivery id) answers any repeat with the first event.
    """

    event_type: str
    data: dict[str, Any]
    tenant_id: str | None = None
    endpoint_ids: list[str] | None = None
    source_id: str | None = None
    idempotency_key: str | None = None
    # A second key that also makes a repeat (an inbound body's digest, `ingest.py`).
    content_key: str | None = None
    ignore_type_filters: bool = False
    # An endpoint left out whatever it subscribed to: a warning about a failing endpoint
    # is not sent to it (its failure would count, and feed more warnings).
    not_to: str | None = None
    received: Received | None = None
    # Published by the operator (not a tenant's key): its type may become a metric label.
    by_operator: bool = True
    # Check the data against its type's schema in the catalogue: GATEWAY_EVENT_TYPES
    # (`open` or `strict`); None for the gateway's own events, which are not catalogued.
    schema_check: str | None = None
    # An update event's data before the change: delivered beside `data`.
    previous_data: dict[str, Any] | None = None
    # Ordered endpoints receive the events of one key one at a time, in publish order.
    ordering_key: str | None = None
    data_text: str = field(init=False)
    previous_text: str | None = field(init=False, default=None)
    request_hash: str | None = field(init=False, default=None)
    # Taken where the publish was asked for (the batch is written in another task).
    trace_parent: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.data_text = serialize_data(self.data)
        if self.previous_data is not None:
            self.previous_text = serialize_data(self.previous_data)
        self.trace_parent = current_parent()
        if self.idempotency_key is not None and self.received is None:
            request = [self.event_type, self.data_text, self.tenant_id, self.endpoint_ids]
            if self.previous_text is not None:
                # Only then: the hashes of events stored before previous_data stay valid.
                request.append(self.previous_text)
            if self.ordering_key is not None:
                request.append(f"ordering_key:{self.ordering_key}")
            self.request_hash = hashlib.sha256(json.dumps(request).encode()).hexdigest()


@dataclass(slots=True)
class NewEvent:
    """An event as the publish that stores it knows it, read as a loaded `Event` is.

    Not an `Event`: building an ORM instance per event cost 7% of the API's CPU at 800
    publishes/s (py-spy), for fields that a plain class holds as well. The fields are
    the table's columns (a test keeps them so)."""

    id: str
    type: str
    tenant_id: str | None
    source_id: str | None
    data: str
    previous_data: str | None
    idempotency_key: str | None
    request_hash: str | None
    content_key: str | None
    raw_body: bytes | None
    raw_headers: dict[str, str] | None
    verification: str | None
    trace_parent: str | None
    ordering_key: str | None
    sequence: int | None
    created_at: datetime

    def row(self) -> dict[str, Any]:
        """Its row for the insert."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass
class Published:
    event: Event | NewEvent
    deliveries: int
    created: bool  # False when an Idempotency-Key repeat returned the first event
    # Its deliveries that the publish leased (see `publish_many`), and until when.
    leased: list[str] = field(default_factory=list)
    leased_until: datetime | None = None


def serialize_data(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def publish(
    session: AsyncSession,
    dispatcher: Dispatcher,
    *,
    event_type: str,
    data: dict[str, Any],
    **options: Any,
) -> Published:
    [result] = await publish_many(session, dispatcher, [Publish(event_type, data, **options)])
    if isinstance(result, Exception):
        raise result
    return result


async def publish_many(
    session: AsyncSession,
    dispatcher: Dispatcher,
    items: list[Publish],
    lease: timedelta | None = None,
) -> list[Published | Exception]:
    """Store the batch in one transaction; per item, the event or the error it gets.

    With a `lease`, the deliveries are stored leased for that long (not those of
    ordered endpoints, which the claim holds back in order) and their jobs carry
    the lease, so that the worker sends them without claiming them first; a job
    lost meanwhile leaves only a lease that lapses within the sweeper's grace.

    A batch that trips over a concurrent writer (an idempotency key committed
    elsewhere meanwhile, an endpoint deleted between matching and insert) is rolled
    back and stored again: the second look finds the key's event, and no longer
    the endpoint. The last try locks the endpoints it matches against deletion
    (`_store`), so that a stream of deletes cannot fail it too. If the batch keeps
    failing, each item is stored on its own, so that one item's failure is its own:
    no item's error goes to another, and an item that was committed is never
    answered with an error.
    """
    results: list[Published | Exception] | None = None
    for tries_left in reversed(range(STORE_TRIES)):
        try:
            results = await _store(session, items, lease=lease, lock=tries_left == 0)
            break
        except DBAPIError as exc:
            await session.rollback()
            if len(items) == 1 and (tries_left == 0 or not _conflict(exc)):
                raise
            if not _conflict(exc):
                break  # an item the database refuses: found out item by item below
    if results is None:
        # Each is counted and dispatched on its own.
        return [await _publish_alone(session, dispatcher, item, lease) for item in items]
    await _announce(dispatcher, items, results)
    return results


async def publish_all(
    session: AsyncSession, dispatcher: Dispatcher, items: list[Publish]
) -> list[Published]:
    """Store every item in one transaction, or none: the first item refused raises its
    error, its `loc` under `("body", "events", i)` (a 409 names the index in its text).

    An idempotency key repeated within the batch with other content is a 422; one
    repeating an earlier event answers that event, as a single publish does.
    """
    # Items whose key an earlier item of the batch holds with other content, and that
    # item's index: `_store` answers them as conflicts, which here are the caller's 422.
    clashes: dict[int, int] = {}
    first_of_key: dict[str, tuple[int, str | None]] = {}
    for i, item in enumerate(items):
        if item.idempotency_key is not None:
            first, request_hash = first_of_key.setdefault(
                item.idempotency_key, (i, item.request_hash)
            )
            if request_hash != item.request_hash:
                clashes[i] = first
    results: list[Published | Exception] = []
    for tries_left in reversed(range(STORE_TRIES)):
        try:
            results = await _store(session, items, all_or_none=True, lock=tries_left == 0)
            break
        except DBAPIError as exc:
            await session.rollback()
            if tries_left == 0 or not _conflict(exc):
                raise
    published = []
    for i, r in enumerate(results):
        if isinstance(r, Exception):
            if i in clashes:
                raise Invalid(
                    f"idempotency_key repeats the key of event {clashes[i]} with other content",
                    loc=("body", "events", i, "idempotency_key"),
                )
            raise at_index(r, i)
        published.append(r)
    await _announce(dispatcher, items, results)
    return published


def at_index(exc: Exception, index: int) -> Exception:
    """An item's error as the batch answers it: where it is, and which item."""
    if isinstance(exc, Invalid):
        return Invalid(exc.detail, loc=("body", "events", index, *exc.loc[1:]))
    if isinstance(exc, Conflict):
        return Conflict(f"events[{index}]: {exc.detail}")
    return exc


async def _announce(
    dispatcher: Dispatcher, items: list[Publish], results: list[Published | Exception]
) -> None:
    """Count the stored events and dispatch their deliveries, after the commit."""
    for item, r in zip(items, results, strict=True):
        if isinstance(r, Published) and r.created:
            EVENTS.labels(
                "inbound" if r.event.source_id else "api",
                event_type_label(r.event.type, item.by_operator),
            ).inc()
    created = [r for r in results if isinstance(r, Published) and r.created]
    # One batch, one lease.
    until = next((r.leased_until for r in created if r.leased_until is not None), None)
    await asyncio.gather(
        dispatch_leased(dispatcher, until, [d for r in created for d in r.leased])
        if until is not None
        else asyncio.sleep(0),
        dispatch_events(
            dispatcher,
            [
                (r.event.id, r.deliveries - len(r.leased))
                for r in created
                if r.deliveries > len(r.leased)
            ],
        ),
    )


async def _publish_alone(
    session: AsyncSession, dispatcher: Dispatcher, item: Publish, lease: timedelta | None
) -> Published | Exception:
    try:
        [result] = await publish_many(session, dispatcher, [item], lease)
    except Exception as exc:  # this item's alone: the others' results stand
        await session.rollback()
        return exc
    return result


def _conflict(exc: DBAPIError) -> bool:
    """A write that lost a race with another transaction: worth doing again."""
    return isinstance(exc, IntegrityError) or lost_a_race(exc)


async def _store(
    session: AsyncSession,
    items: list[Publish],
    all_or_none: bool = False,
    lease: timedelta | None = None,
    lock: bool = False,
) -> list[Published | Exception]:
    """Store the items; per item, the event or its error. `all_or_none`: when any item
    has an error, store nothing (the caller raises it). With a `lease`, the deliveries
    that may be sent at once are stored leased (see `publish_many`).

    `lock` takes a key-share lock on the endpoints read for matching, held until the
    commit: a delete of one of them waits for this publish (and then deletes its
    deliveries with it), where otherwise an endpoint deleted between the read and
    the insert fails the insert. Only a retry takes it: a lock writes to the rows
    it locks, which every publish paying would cost more than the rare retry."""
    results: list[Published | Exception] = []
    candidates_for: dict[str | None, list[Subscription]] = {}
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    # The rows of events with an ordering key, and of their deliveries to ordered
    # endpoints: their sequence is taken once all of the batch is known.
    keyed: list[tuple[NewEvent, dict[str, Any], list[dict[str, Any]]]] = []
    # Earlier events of the batch's keys (idempotency and content keys, which are
    # namespaced apart), found with one query each.
    await _lock_keys(session, items)
    keys_in_batch = await _by_keys(session, items)
    # The catalogue's entries for the batch's types: one query (see `dataschema.py`).
    catalogued = await dataschema.lookup(
        session, {i.event_type for i in items if i.schema_check is not None}
    )
    now = utcnow()
    for item in items:
        try:
            earlier = next(
                (
                    keys_in_batch[k]
                    for k in (item.idempotency_key, item.content_key)
                    if k is not None and k in keys_in_batch
                ),
                None,
            )
            if earlier is not None:
                results.append(_repeat(earlier, item))
                continue
            if item.schema_check is not None:
                refused = dataschema.refusal(
                    catalogued.get(item.event_type), item.schema_check, item.event_type, item.data
                )
                if refused is not None:
                    results.append(refused)
                    continue
            if item.endpoint_ids is not None:
                candidates = await _named_endpoints(
                    session, item.tenant_id, item.endpoint_ids, lock
                )
            else:
                if item.tenant_id not in candidates_for:
                    candidates_for[item.tenant_id] = await _enabled_endpoints(
                        session, item.tenant_id, lock
                    )
                candidates = candidates_for[item.tenant_id]
        except (Invalid, Conflict) as exc:
            results.append(exc)
            continue
        if item.ignore_type_filters:
            matched = [ep.id for ep in candidates if not ep.disabled]
        else:
            matched = _matching(item, candidates)
        if item.not_to is not None:
            matched = [endpoint_id for endpoint_id in matched if endpoint_id != item.not_to]
        received = item.received
        event = NewEvent(
            id=new_id("evt"),
            type=item.event_type,
            tenant_id=item.tenant_id,
            source_id=item.source_id,
            data=item.data_text,
            previous_data=item.previous_text,
            idempotency_key=item.idempotency_key,
            request_hash=item.request_hash,
            content_key=item.content_key,
            raw_body=received.body if received else None,
            raw_headers=received.headers if received else None,
            verification=received.verification if received else None,
            trace_parent=item.trace_parent,
            ordering_key=item.ordering_key,
            sequence=None,
            created_at=now,
        )
        event_row = event.row()
        events.append(event_row)
        new_deliveries = [
            {
                "id": new_id("dlv"),
                "event_id": event.id,
                "event_type": event.type,
                "endpoint_id": endpoint_id,
                "status": DeliveryStatus.PENDING,
                "attempt_count": 0,
                "stalled_claims": 0,
                "next_attempt_at": now,
                "dispatched_at": now,
                "created_at": now,
                "updated_at": now,
                "ordering_key": None,
                "sequence": None,
            }
            for endpoint_id in matched
        ]
        deliveries.extend(new_deliveries)
        if item.ordering_key is not None:
            ordered = {ep[0] for ep in candidates if ep[5] is not None}
            keyed.append(
                (event, event_row, [d for d in new_deliveries if d["endpoint_id"] in ordered])
            )
        published = Published(event, len(matched), created=True)
        for key in (item.idempotency_key, item.content_key):
            if key is not None:
                keys_in_batch[key] = published
        results.append(published)
    if all_or_none and any(isinstance(r, Exception) for r in results):
        await session.rollback()  # only reads were made
        return results
    # Core inserts, one statement per table for the whole batch: the ORM's unit of
    # work costs more CPU than the database does here.
    conn = await session.connection()
    if keyed:
        await _take_sequences(conn, keyed, now)
    if events:
        await conn.execute(_INSERT_EVENTS, events)
    if deliveries:
        if lease is not None:
            _lease(deliveries, results, utcnow() + lease)
        await conn.execute(_INSERT_DELIVERIES, deliveries)
    await session.commit()
    return results


def _lease(
    deliveries: list[dict[str, Any]], results: list[Published | Exception], until: datetime
) -> None:
    """Lease the deliveries to their publish's jobs, all but ordered ones (numbered by
    now), which go through the claim: it holds back all but the head of a key."""
    of_event = {r.event.id: r for r in results if isinstance(r, Published) and r.created}
    for row in deliveries:
        if row.get("ordering_key") is None:
            row["locked_until"] = until
            row["stalled_claims"] = 1  # as a claim counts: a crash mid-attempt shows
            published = of_event[row["event_id"]]
            published.leased.append(row["id"])
            published.leased_until = until
        else:
            row["locked_until"] = None


async def _take_sequences(
    conn: AsyncConnection,
    keyed: list[tuple[NewEvent, dict[str, Any], list[dict[str, Any]]]],
    now: datetime,
) -> None:
    """Number the keyed events of the batch, in batch order, after the key's last number;
    `now`, the batch's time, is when each key was last taken (`used_at`, for retention).

    The counter's row stays locked until this transaction commits, so a concurrent
    publish of the same key (another API process) waits, and takes the numbers after
    these: a key's sequence is its events' commit order. Keys are taken in sorted
    order, so two batches never wait for each other in a cycle."""
    wanted: dict[str, int] = {}
    for event, _, _ in keyed:
        assert event.ordering_key is not None
        wanted[event.ordering_key] = wanted.get(event.ordering_key, 0) + 1
    upsert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(_ORDERING_KEY)
    upsert = upsert.on_conflict_do_update(
        index_elements=[_ORDERING_KEY.c.key],
        set_={
            "last_sequence": _ORDERING_KEY.c.last_sequence + upsert.excluded.last_sequence,
            "used_at": upsert.excluded.used_at,
        },
    ).returning(_ORDERING_KEY.c.key, _ORDERING_KEY.c.last_sequence)
    # One statement for all the keys, its rows in sorted order (they are locked in the
    # order given); were two batches to deadlock all the same, `publish_many` runs the
    # loser again.
    rows = [{"key": key, "last_sequence": wanted[key], "used_at": now} for key in sorted(wanted)]
    next_of = {key: last - wanted[key] + 1 for key, last in await conn.execute(upsert.values(rows))}
    for event, event_row, ordered_deliveries in keyed:
        key = event_row["ordering_key"]
        event.sequence = event_row["sequence"] = next_of[key]
        next_of[key] += 1
        for delivery in ordered_deliveries:
            delivery["ordering_key"] = key
            delivery["sequence"] = event.sequence


def _repeat(earlier: Published, item: Publish) -> Published | Exception:
    if item.request_hash is not None and earlier.event.request_hash != item.request_hash:
        return Conflict("Idempotency-Key was already used with a different request")
    return Published(earlier.event, earlier.deliveries, created=False)


async def _enabled_endpoints(
    session: AsyncSession, tenant_id: str | None, lock: bool = False
) -> list[Subscription]:
    """The endpoints an event may go to, by the tenant rule (see `matching.py`): a
    tenant's event only its tenant's, an event without a tenant only the endpoints
    without one. Only the columns that matching reads."""
    conn = await session.connection()
    query, params = (
        (_ENABLED_UNOWNED, {})
        if tenant_id is None
        else (_ENABLED_OF_TENANT, {"tenant_id": tenant_id})
    )
    if lock:
        query = query.with_for_update(read=True, key_share=True)
    return list((await conn.execute(query, params)).all())


async def _named_endpoints(
    session: AsyncSession, tenant_id: str | None, endpoint_ids: list[str], lock: bool = False
) -> list[Subscription]:
    wanted = set(endpoint_ids)
    query = _subscriptions().where(col(Endpoint.id).in_(wanted))
    if tenant_id is not None:
        query = query.where(col(Endpoint.tenant_id) == tenant_id)
    if lock:
        query = query.with_for_update(read=True, key_share=True)
    endpoints = list((await session.execute(query)).all())
    missing = wanted - {ep.id for ep in endpoints}
    if missing:
        scope = f" of tenant {tenant_id!r}" if tenant_id is not None else ""
        raise Invalid(
            f"unknown endpoint_ids{scope}: {', '.join(sorted(missing))}",
            loc=("body", "endpoint_ids"),
        )
    return endpoints


def _subscriptions() -> Any:
    return select(
        _ENDPOINT.c.id,
        _ENDPOINT.c.event_types,
        _ENDPOINT.c.source_ids,
        _ENDPOINT.c.disabled,
        _ENDPOINT.c.filter,
        _ENDPOINT.c.ordering,
    )


def _matching(item: Publish, candidates: list[Subscription]) -> list[str]:
    """The endpoints the event goes to: by their type and source filters, then by their
    CEL filters (`filters.py`). A filter that fails on the event does not match and is
    counted; it never fails the publish."""
    # Rows unpacked, not read by name: a Row's attribute costs a microsecond or so,
    # which at 100 endpoints an event was more than evaluating their filters.
    subscribed = [
        (endpoint_id, expression)
        for endpoint_id, event_types, source_ids, disabled, expression, _ in candidates
        if not disabled
        and type_matches(event_types, item.event_type)
        and source_matches(source_ids, item.source_id)
    ]
    expressions = frozenset(e for _, e in subscribed if e is not None)
    if not expressions:
        return [endpoint_id for endpoint_id, _ in subscribed]
    received = item.received
    try:
        verdicts = filters.verdicts(
            expressions,
            item.event_type,
            item.data,
            item.tenant_id,
            item.source_id,
            received.headers if received else None,
            previous_data=item.previous_data,
        )
    except Exception:  # not seen; were it to happen, filtered endpoints do not match
        log.exception("endpoint filters failed on event of type %s", item.event_type)
        verdicts = {e: (False, "filters failed") for e in expressions}
    matched = []
    for endpoint_id, expression in subscribed:
        if expression is not None:
            matches, error = verdicts[expression]
            if error is not None:
                FILTER_FAILURES.labels(endpoint_id).inc()
            if not matches:
                continue
        matched.append(endpoint_id)
    return matched


# Core statements, built once, run on the session's connection: on the publish path
# the ORM's handling of each statement cost more CPU than the database did.
_ENDPOINT = table(Endpoint)
_ENABLED = _subscriptions().where(_ENDPOINT.c.disabled.is_(False))
_ENABLED_UNOWNED = _ENABLED.where(_ENDPOINT.c.tenant_id.is_(None))
_ENABLED_OF_TENANT = _ENABLED.where(_ENDPOINT.c.tenant_id == bindparam("tenant_id"))
_INSERT_EVENTS = insert(table(Event))
_INSERT_DELIVERIES = insert(table(Delivery))
_ORDERING_KEY = table(OrderingKey)


async def _lock_keys(session: AsyncSession, items: list[Publish]) -> None:
    """PostgreSQL partitions events by time (`store/partitions.py`), and a unique index
    of a partitioned table must hold its partition key: so a key's uniqueness is kept by
    its advisory lock instead, held until commit, which a concurrent publish of the same
    key waits for before it looks the key up (and finds this one's event)."""
    keys = sorted({k for i in items for k in (i.idempotency_key, i.content_key) if k is not None})
    conn = await session.connection()
    if keys and conn.dialect.name == "postgresql":
        await conn.execute(_LOCK_KEYS, {"keys": keys})


_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) k"
)


async def _by_keys(session: AsyncSession, items: list[Publish]) -> dict[str, Published]:
    """The earlier events of the items' idempotency and content keys, by key."""
    found: dict[str, Published] = {}
    for column, keys in (
        (Event.idempotency_key, {i.idempotency_key for i in items} - {None}),
        (Event.content_key, {i.content_key for i in items} - {None}),
    ):
        if not keys:
            continue
        events = list(await session.scalars(select(Event).where(col(column).in_(keys))))
        if not events:
            continue
        counts = dict(
            (
                await session.execute(
                    select(col(Delivery.event_id), func.count())
                    .where(col(Delivery.event_id).in_([e.id for e in events]))
                    .group_by(col(Delivery.event_id))
                )
            )
            .tuples()
            .all()
        )
        for e in events:
            for key in (e.idempotency_key, e.content_key):
                if key is not None:
                    found[key] = Published(e, counts.get(e.id, 0), created=False)
    return found
