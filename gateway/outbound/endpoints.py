"""Endpoints: create, change, rotate secrets, and hand failed deliveries back to the queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from gateway.crypto import SecretBox
from gateway.db import lost_a_race
from gateway.errors import Conflict, Invalid, NotFound
from gateway.ids import new_id
from gateway.outbound import filters, signatures
from gateway.outbound.catalogue import check_subscribable, test_example
from gateway.outbound.dataschema import DataRefused
from gateway.outbound.endpoint_auth import open_auth
from gateway.outbound.endpoint_auth import seal as seal_auth
from gateway.outbound.schemas import EndpointCreate, EndpointUpdate, FilterTest
from gateway.outbound.signer import generate_secret
from gateway.queue.dispatch import DELIVER_DELIVERIES, Dispatcher, dispatch_deliveries
from gateway.settings import Settings
from gateway.store.models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointKind,
    Ordering,
    Source,
    table,
)
from gateway.store.queries import get_or_404
from gateway.timeutil import as_utc, utcnow
from gateway.transform import checked as checked_transformation

if TYPE_CHECKING:
    from gateway.outbound.fanout import Published

SECRET = "endpoint.secret"  # what a sealed endpoint secret is bound to
# Reads of the current secret a rotation makes while others keep changing it.
ROTATION_TRIES = 10
# Deletes of an endpoint that a deadlock with a worker's record may abort.
DELETE_TRIES = 3


async def _checked_url(url: str, settings: Settings) -> str:
    # Imported here: its resolvers are aiohttp's, which the CLI's reads of endpoints
    # and deliveries (through this module) do not otherwise need.
    from gateway.outbound.addresses import check_url

    try:
        await check_url(url, settings.allowed_networks, settings.dns_servers)
    except ValueError as exc:
        raise Invalid(str(exc), loc=("body", "url")) from None
    return url


async def _checked_auth(
    body: EndpointCreate | EndpointUpdate, url: str, settings: Settings
) -> None:
    """The token URL obeys the endpoint URL's address rules; mTLS needs an https URL."""
    from gateway.outbound.addresses import check_url

    auth = body.auth
    if auth is None:
        return
    if auth.type == "oauth2":
        try:
            await check_url(auth.token_url, settings.allowed_networks, settings.dns_servers)
        except ValueError as exc:
            detail = str(exc).replace("url ", "token_url ", 1)
            raise Invalid(detail, loc=("body", "auth", "token_url")) from None
    if auth.type == "mtls" and not url.lower().startswith("https:"):
        raise Invalid("mtls needs an https url", loc=("body", "auth", "type"))


async def _check_sources(
    session: AsyncSession, source_ids: list[str] | None, tenant_id: str | None
) -> None:
    """Sources belong to the operator: their events have no tenant, so only an endpoint
    without one can receive them (the tenant rule, `matching.py`). The message for a
    tenant's endpoint says nothing of which sources exist."""
    if not source_ids:
        return
    if tenant_id is not None:
        raise Invalid(
            "an endpoint with a tenant_id cannot filter on source_ids: events "
            "received through sources belong to no tenant, so they only reach "
            "endpoints without one",
            loc=("body", "source_ids"),
        )
    known = set(
        (
            await session.scalars(select(col(Source.id)).where(col(Source.id).in_(set(source_ids))))
        ).all()
    )
    missing = sorted(set(source_ids) - known)
    if missing:
        raise Invalid(f"unknown source_ids: {', '.join(missing)}", loc=("body", "source_ids"))


async def get_endpoint(
    session: AsyncSession, endpoint_id: str, tenant_id: str | None = None
) -> Endpoint:
    """The endpoint; with `tenant_id` (a scoped key's), 404 for another tenant's."""
    return await get_or_404(session, Endpoint, endpoint_id, "endpoint", tenant_id)


async def delete_endpoint(
    session: AsyncSession, endpoint_id: str, tenant_id: str | None = None
) -> None:
    """Delete the endpoint (once committed) with its deliveries and their attempt logs.

    The deliveries go by their foreign key's cascade, which waits for an attempt being
    recorded on one of them; their attempts (no foreign key on PostgreSQL) after that.
    The cascade and a worker recording attempts lock the same deliveries, each in its
    own order: when PostgreSQL ends a deadlock by aborting this side, it runs again."""
    for tries_left in reversed(range(DELETE_TRIES)):
        await get_endpoint(session, endpoint_id, tenant_id)
        try:
            await session.execute(delete(Endpoint).where(col(Endpoint.id) == endpoint_id))
            await session.execute(delete(Attempt).where(col(Attempt.endpoint_id) == endpoint_id))
            return
        except DBAPIError as exc:
            await session.rollback()
            if tries_left == 0 or not lost_a_race(exc):
                raise


async def create_endpoint(
    session: AsyncSession, body: EndpointCreate, settings: Settings, box: SecretBox
) -> Endpoint:
    await _check_sources(session, body.source_ids, body.tenant_id)
    await check_subscribable(session, body.event_types)
    url = await _url_of_kind(body, settings)
    await _checked_auth(body, url, settings)
    now = utcnow()
    endpoint = Endpoint(
        id=new_id("ep"),
        url=url,
        kind=body.kind,
        tenant_id=body.tenant_id,
        description=body.description,
        event_types=body.event_types,
        source_ids=body.source_ids,
        secret=box.seal(body.secret or generate_secret(), SECRET),
        headers=box.seal_headers(body.headers),
        rate_limit=body.rate_limit,
        disabled=body.disabled,
        transformation=await checked_transformation(
            body.transformation, settings.transform_timeout_ms
        ),
        filter=body.filter,
        retry_policy=body.retry_policy.stored() if body.retry_policy is not None else None,
        contact_email=body.contact_email,
        signature=signatures.stored(body.signature),
        auth=seal_auth(body.auth, box) if body.auth is not None else None,
        ordering=stored_ordering(body.ordered),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    return endpoint


async def _url_of_kind(body: EndpointCreate, settings: Settings) -> str:
    """The URL to store: an http endpoint's, checked; "" for a stream one, which has none."""
    if body.kind == EndpointKind.STREAM:
        _check_stream_fields(body.url, body.auth)
        return ""
    if body.url is None:
        raise Invalid("url is required for an http endpoint", loc=("body", "url"))
    return await _checked_url(body.url, settings)


def _check_stream_fields(url: str | None, auth: object | None) -> None:
    """A stream endpoint's deliveries go to the client that reads its stream: to no
    URL, and with no credentials for one."""
    if url is not None:
        raise Invalid(
            "a stream endpoint has no url: its deliveries are read from "
            "GET /v1/endpoints/{endpoint_id}/stream",
            loc=("body", "url"),
        )
    if auth is not None:
        raise Invalid("a stream endpoint has no auth", loc=("body", "auth"))


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: str,
    body: EndpointUpdate,
    settings: Settings,
    box: SecretBox,
    tenant_id: str | None = None,
) -> Endpoint:
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    changes = body.model_dump(exclude_unset=True)
    if endpoint.kind == EndpointKind.STREAM:
        _check_stream_fields(changes.get("url"), changes.get("auth"))
    if "url" in changes:
        if changes["url"] is None:
            raise Invalid("url cannot be null", loc=("body", "url"))
        await _checked_url(changes["url"], settings)
    for field in ("disabled", "headers", "ordered"):
        if field in changes and changes[field] is None:
            raise Invalid(f"{field} cannot be null", loc=("body", field))
    if "transformation" in changes:  # null clears it
        await checked_transformation(changes["transformation"], settings.transform_timeout_ms)
    if changes.get("event_types"):
        await check_subscribable(session, changes["event_types"])
    if "source_ids" in changes or "tenant_id" in changes:
        await _check_sources(
            session,
            changes.get("source_ids", endpoint.source_ids),
            changes.get("tenant_id", endpoint.tenant_id),
        )
    if "headers" in changes:
        changes["headers"] = box.seal_headers(changes["headers"])
    if "signature" in changes:  # null: back to standard
        changes["signature"] = signatures.stored(body.signature)
        _check_secret_fits(box, endpoint.secret, signatures.scheme_of(changes["signature"]))
    if "auth" in changes:  # null removes it
        await _checked_auth(body, changes.get("url") or endpoint.url, settings)
        changes["auth"] = seal_auth(body.auth, box) if body.auth is not None else None
    elif changes.get("url") and endpoint.auth is not None:
        if open_auth(endpoint.auth, box).get("type") == "mtls":
            if not changes["url"].lower().startswith("https:"):
                raise Invalid("mtls needs an https url", loc=("body", "url"))
    if "retry_policy" in changes:  # null: the gateway's settings again
        changes["retry_policy"] = (
            body.retry_policy.stored() if body.retry_policy is not None else None
        )
    if changes.get("disabled") is False and endpoint.disabled:
        # Re-enabled by hand: it starts with a clean bill of health. Not on a PATCH
        # that leaves an enabled endpoint enabled: its owner could otherwise keep a
        # failing endpoint's breaker shut, and its attempts coming, at will.
        changes.update(
            disabled_reason=None,
            failing_since=None,
            consecutive_failures=0,
            circuit_open_until=None,
            failed_deliveries_in_row=0,
            warned_percent=0,
        )
    if "ordered" in changes:
        changes["ordering"] = stored_ordering(changes.pop("ordered"))
        if changes["ordering"] is None and endpoint.ordering is not None:
            await _release_keys(session, endpoint_id)
        elif endpoint.ordering == Ordering.STRICT and changes["ordering"] == Ordering.ORDERED:
            await _release_strict_holds(session, endpoint_id)
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.updated_at = utcnow()
    return endpoint


def stored_ordering(ordered: bool | str) -> str | None:
    """`Endpoint.ordering` for the API's `ordered` (false, true or "strict")."""
    if ordered == "strict":
        return Ordering.STRICT
    return Ordering.ORDERED if ordered else None


def shown_ordering(ordering: str | None) -> bool | str:
    """The API's `ordered` for `Endpoint.ordering`."""
    return "strict" if ordering == Ordering.STRICT else ordering is not None


async def _release_keys(session: AsyncSession, endpoint_id: str) -> None:
    """An endpoint made unordered: nothing of it waits for its key any longer. Its
    waiting deliveries are marked undispatched (`dispatched_at` null), for
    `dispatch_released` to hand out once this is committed (or the sweeper, if not)."""
    c = table(Delivery).c
    for status, values in (
        (DeliveryStatus.PENDING, {"dispatched_at": None}),
        (DeliveryStatus.FAILED, {}),
    ):
        await session.execute(
            update(table(Delivery))
            .where(c.endpoint_id == endpoint_id, c.ordering_key.is_not(None), c.status == status)
            .values(ordering_key=None, sequence=None, **values)
        )


async def _release_strict_holds(session: AsyncSession, endpoint_id: str) -> None:
    """A strict endpoint made merely ordered: its failed deliveries hold nothing back
    any longer. Its keyed waiting deliveries are marked undispatched, for
    `dispatch_released` (a claim takes only those no longer held back)."""
    c = table(Delivery).c
    await session.execute(
        update(table(Delivery))
        .where(
            c.endpoint_id == endpoint_id,
            c.ordering_key.is_not(None),
            c.status == DeliveryStatus.PENDING,
        )
        .values(dispatched_at=None)
    )


async def dispatch_released(
    session: AsyncSession, dispatcher: Dispatcher, endpoint_id: str
) -> None:
    """Dispatch the deliveries a change of ordering let go, after its commit."""
    c = table(Delivery).c
    now = utcnow()
    ids = list(
        (
            await session.execute(
                update(table(Delivery))
                .where(
                    c.endpoint_id == endpoint_id,
                    c.status == DeliveryStatus.PENDING,
                    c.dispatched_at.is_(None),
                )
                .values(dispatched_at=now)
                .returning(c.id)
            )
        ).scalars()
    )
    await session.commit()
    await dispatch_deliveries(dispatcher, ids, f"released:{int(now.timestamp() * 1000)}")


def _check_secret_fits(box: SecretBox, sealed: str, scheme: str) -> None:
    """The endpoint's secret must sign under its new scheme (a `hmac` one may not be a
    Standard Webhooks secret); a generated secret suits every scheme."""
    try:
        signatures.check_secret(scheme, box.open(sealed, SECRET))
    except ValueError as exc:
        raise Invalid(
            f"the endpoint's secret cannot sign for the {scheme} scheme ({exc}): rotate it "
            "to one that can (a generated secret suits every scheme), then change the scheme",
            loc=("body", "signature"),
        ) from None


def close_breaker(endpoint: Endpoint) -> None:
    """A user retrying or recovering says the endpoint is back: try it at once."""
    endpoint.circuit_open_until = None
    endpoint.consecutive_failures = 0


async def rotate_secret(
    session: AsyncSession,
    endpoint_id: str,
    new_secret: str | None,
    overlap_hours: float,
    box: SecretBox,
    tenant_id: str | None = None,
) -> tuple[Endpoint, str]:
    """The endpoint with a new secret, and the secret; the old one keeps signing beside
    it for `overlap_hours`. Committed.

    The change applies only if the secret is still the one read; otherwise another
    rotation got there first, and it is read again. So rotations at the same time
    (several API processes) come out one after the other: none is lost, the later
    one's secret is current and the earlier one's keeps signing as the previous.
    """
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    if new_secret is not None:
        try:
            signatures.check_secret(signatures.scheme_of(endpoint.signature), new_secret)
        except ValueError as exc:
            raise Invalid(str(exc), loc=("body", "secret")) from None
    secret = new_secret or generate_secret()
    sealed = box.seal(secret, SECRET)
    c = table(Endpoint).c
    for _ in range(ROTATION_TRIES):
        current = await session.scalar(select(c.secret).where(c.id == endpoint_id))
        if current is None:
            raise NotFound(f"endpoint {endpoint_id!r} not found")
        now = utcnow()
        changed = await session.execute(
            update(table(Endpoint))
            .where(c.id == endpoint_id, c.secret == current)
            .values(
                previous_secret=current,
                secret=sealed,
                updated_at=now,
                previous_secret_expires_at=now + timedelta(hours=overlap_hours),
            )
        )
        await session.commit()
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            await session.refresh(endpoint)
            return endpoint, secret
    raise Conflict(
        f"the secret of endpoint {endpoint_id} is being changed by other requests; try again"
    )


def live_previous_secret_expiry(
    endpoint: Endpoint | Row[Any], now: datetime | None = None
) -> datetime | None:
    """When the previous secret stops signing, or None when it no longer does."""
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and as_utc(expires) > (now or utcnow()):
        return expires
    return None


async def requeue(
    session: AsyncSession, dispatcher: Dispatcher, where: list[ColumnElement[bool]]
) -> int:
    """Put the matching failed deliveries back to pending, due now; commit; dispatch."""
    now = utcnow()
    ids = list(
        (
            await session.execute(
                update(Delivery)
                .where(col(Delivery.status) == DeliveryStatus.FAILED, *where)
                .values(
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=now,
                    dispatched_at=now,
                    updated_at=now,
                )
                .returning(col(Delivery.id))
            )
        ).scalars()
    )
    await session.commit()
    await dispatch_deliveries(dispatcher, ids, f"requeue:{int(now.timestamp() * 1000)}")
    return len(ids)


def _recoverable(
    endpoint_id: str, since: datetime, until: datetime | None
) -> list[ColumnElement[bool]]:
    """The deliveries a recovery takes (besides being failed): what it re-queues and
    what its preview counts are the same rows."""
    where: list[ColumnElement[bool]] = [
        col(Delivery.endpoint_id) == endpoint_id,
        col(Delivery.created_at) >= as_utc(since),
    ]
    if until is not None:
        where.append(col(Delivery.created_at) < as_utc(until))
    return where


async def recover(
    session: AsyncSession,
    dispatcher: Dispatcher,
    endpoint_id: str,
    since: datetime,
    until: datetime | None,
    tenant_id: str | None = None,
) -> int:
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    if endpoint.disabled:
        raise Conflict(f"endpoint {endpoint_id} is disabled; enable it before recovering")
    close_breaker(endpoint)
    return await requeue(session, dispatcher, _recoverable(endpoint_id, since, until))


async def count_recoverable(
    session: AsyncSession,
    endpoint_id: str,
    since: datetime,
    until: datetime | None,
    tenant_id: str | None = None,
) -> int:
    """How many failed deliveries `recover` would re-queue now; changes nothing."""
    await get_endpoint(session, endpoint_id, tenant_id)
    counted = await session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            col(Delivery.status) == DeliveryStatus.FAILED,
            *_recoverable(endpoint_id, since, until),
        )
    )
    return int(counted or 0)


async def reveal_secret(
    session: AsyncSession, endpoint_id: str, box: SecretBox, tenant_id: str | None = None
) -> tuple[str, datetime | None]:
    """The current secret, and until when the previous one still signs (None: it does not)."""
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    return box.open(endpoint.secret, SECRET), live_previous_secret_expiry(endpoint)


async def reveal_auth(
    session: AsyncSession, endpoint_id: str, box: SecretBox, tenant_id: str | None = None
) -> dict[str, Any] | None:
    """The endpoint's auth with its secrets in clear (None: it has none)."""
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    return None if endpoint.auth is None else open_auth(endpoint.auth, box)


async def send_test(
    session: AsyncSession,
    dispatcher: Dispatcher,
    endpoint_id: str,
    tenant_id: str | None = None,
    event_type: str | None = None,
    data: dict[str, Any] | None = None,
) -> Published:
    """An event to this endpoint only, whatever its type filters: `webhook.test`, or one
    of `event_type` with `data` or else the type's first example in the catalogue (data
    of a catalogued type is checked against its schema, as any publish)."""
    # Imported here: publishing loads metrics and tracing, which reads of endpoints
    # (the CLI's) do not need.
    from gateway.outbound.fanout import publish

    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    if endpoint.disabled:
        raise Conflict(f"endpoint {endpoint_id} is disabled")
    if event_type is not None and data is None:
        data = await test_example(session, event_type)
    try:
        return await publish(
            session,
            dispatcher,
            event_type=event_type or "webhook.test",
            data=data
            if data is not None
            else {"endpoint_id": endpoint.id, "message": "This is a test event from the gateway."},
            tenant_id=endpoint.tenant_id,
            endpoint_ids=[endpoint.id],
            ignore_type_filters=True,
            # A type of the catalogue is checked; others, webhook.test included, are not.
            schema_check="open" if event_type is not None else None,
        )
    except DataRefused:
        raise
    except Invalid:  # deleted since it was read: the only endpoint it names is unknown now
        raise NotFound(f"endpoint {endpoint_id!r} not found") from None


async def test_filter(
    session: AsyncSession, endpoint_id: str, sample: FilterTest, tenant_id: str | None = None
) -> tuple[bool, str | None]:
    """Whether the sample event passes the endpoint's filter (or `sample.filter`), and
    why not when the filter fails on it. Changes nothing."""
    endpoint = await get_endpoint(session, endpoint_id, tenant_id)
    expression = sample.filter if sample.filter is not None else endpoint.filter
    if expression is None:
        return True, None
    [verdict] = filters.verdicts(
        frozenset([expression]),
        sample.type,
        sample.data,
        sample.tenant_id,
        sample.source_id,
        sample.headers,
        previous_data=sample.previous_data,
    ).values()
    return verdict


async def get_delivery(
    session: AsyncSession, delivery_id: str, tenant_id: str | None = None
) -> Delivery:
    """The delivery; with `tenant_id`, 404 unless its endpoint is that tenant's."""
    delivery = await get_or_404(session, Delivery, delivery_id, "delivery")
    if tenant_id is not None:
        endpoint = await session.get(Endpoint, delivery.endpoint_id)
        if endpoint is None or endpoint.tenant_id != tenant_id:
            raise NotFound(f"delivery {delivery_id!r} not found")
    return delivery


async def retry_delivery(
    session: AsyncSession,
    dispatcher: Dispatcher,
    delivery_id: str,
    tenant_id: str | None = None,
) -> Delivery:
    """One more attempt now, whatever the delivery's state, unless one is in flight."""
    delivery = await get_delivery(session, delivery_id, tenant_id)
    now = utcnow()
    if delivery.locked_until is not None and as_utc(delivery.locked_until) > now:
        raise Conflict(f"delivery {delivery_id} is being attempted right now")
    endpoint = await get_endpoint(session, delivery.endpoint_id)
    if endpoint.disabled:
        raise Conflict(f"endpoint {endpoint.id} is disabled; enable it before retrying")
    close_breaker(endpoint)
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.dispatched_at = now
    delivery.updated_at = now
    await session.commit()
    await dispatcher.enqueue(
        DELIVER_DELIVERIES,
        [delivery_id],
        job_id=f"retry:{delivery_id}:{delivery.attempt_count}",
    )
    return delivery
