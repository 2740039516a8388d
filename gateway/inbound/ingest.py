"""Ingest one request to `/in/{source_id}`: verify, deduplicate, store, fan out.

Verification runs on the raw bytes before anything is parsed or stored; a request
that fails it stores no event, only a line in the refusal log (`refusals.py`): why,
from where, and a few harmless headers. A provider's retry of a delivery
already stored is answered `duplicate` with the first event's id.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.crypto import SecretBox
from gateway.db import SessionMaker
from gateway.errors import GatewayError, NotFound, TooManyRequests, Unauthorized
from gateway.failures import FailureLimiter
from gateway.inbound.refusals import RefusalLog
from gateway.inbound.schemas import ORDERING_KEY_FIELD
from gateway.inbound.sources import SECRET, SOURCE_CACHE_SECONDS, deduplicates_body
from gateway.inbound.transforms import mapped
from gateway.inbound.verifiers import VERIFIERS, SourceConfig, VerificationFailed, get_path
from gateway.metrics import INBOUND, VERIFICATION_FAILURES
from gateway.outbound.batcher import PublishBatcher
from gateway.outbound.dataschema import DataRefused
from gateway.outbound.fanout import Publish, Received
from gateway.outbound.ratelimit import Admission
from gateway.store.models import Source
from gateway.store.queries import get_or_404
from gateway.transform import TransformError
from gateway.validation import check_json_value, storable

log = logging.getLogger("gateway.inbound")

# Kept out of the stored request: credentials, and GitLab's token, which is the secret.
_UNSTORED_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-gitlab-token"}
_TYPE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


class SourceDisabled(GatewayError):
    status_code = 403


class TransformFailed(GatewayError):
    """The source's transformation failed on a verified request: nothing is stored."""

    status_code = 503


class DataInvalid(GatewayError):
    """A received event whose data fails its type's schema (the source validates)."""

    status_code = 400


@dataclass
class Ingested:
    status: str  # "accepted" | "duplicate" | "challenge" | "cancelled"
    event_id: str | None = None
    challenge: str | None = None


@dataclass(frozen=True)
class _SourceView:
    id: str
    provider: str
    config: SourceConfig  # the secret in it is opened
    rate_limit: int | None
    disabled: bool
    deduplicate_body: bool
    validate_data: bool
    transformation: str | None


@dataclass
class InboundContext:
    """What ingest needs beyond the request, built once per process."""

    box: SecretBox
    admission: Admission
    default_rate: int
    batcher: PublishBatcher
    sessionmaker: SessionMaker  # sources are read on a cache miss only
    failures: FailureLimiter  # failed verifications per client address
    refusals: RefusalLog | None = None  # why requests were refused, for the operator
    event_types: str = "open"  # GATEWAY_EVENT_TYPES, for the sources that validate
    transform_timeout_ms: int = 100  # GATEWAY_TRANSFORM_TIMEOUT_MS, for sources' code
    _sources: dict[str, tuple[float, _SourceView]] = field(default_factory=dict)

    async def source(self, source_id: str) -> _SourceView:
        now = time.monotonic()
        cached = self._sources.get(source_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.sessionmaker() as session:
            row = await get_or_404(session, Source, source_id, "source")
        view = _SourceView(
            row.id,
            row.provider,
            SourceConfig(self.box.open(row.secret, SECRET), row.options, row.tolerance_seconds),
            row.rate_limit,
            row.disabled,
            deduplicates_body(row),
            row.validate_data,
            row.transformation,
        )
        if len(self._sources) > 10_000:
            self._sources.clear()
        self._sources[source_id] = (now + SOURCE_CACHE_SECONDS, view)
        return view

    def forget(self, source_id: str) -> None:
        self._sources.pop(source_id, None)


async def ingest(
    ctx: InboundContext,
    source_id: str,
    headers: Mapping[str, str],
    body: bytes,
    client: str,
) -> Ingested:
    """`client` is the caller's address: its failed verifications are limited apart."""
    # Before verification: an address that keeps failing buys itself no HMAC work.
    blocked = ctx.failures.blocked_for(client)
    if blocked > 0:
        raise TooManyRequests(
            "too many requests that failed verification from this address", blocked
        )
    try:
        source = await ctx.source(source_id)
    except NotFound:
        ctx.failures.failed(client)  # guessing source ids is failing too
        raise
    if source.disabled:
        INBOUND.labels(source.provider, "disabled").inc()
        _refused(ctx, source.id, "disabled", "the source is disabled", client, headers)
        raise SourceDisabled(f"source {source_id} is disabled")
    try:
        verified = VERIFIERS[source.provider].verify(source.config, headers, body, time.time())
    except VerificationFailed as exc:
        ctx.failures.failed(client)
        log.info("inbound request to %s refused: %s", source_id, exc)
        INBOUND.labels(source.provider, "refused").inc()
        VERIFICATION_FAILURES.labels(source.provider, exc.reason).inc()
        _refused(ctx, source.id, exc.reason, str(exc), client, headers)
        raise Unauthorized(f"verification failed: {exc}") from None
    # Only what the provider provably sent spends the source's rate: a stranger who
    # knows the URL cannot use it up.
    rate = source.rate_limit or ctx.default_rate
    wait = await ctx.admission.admit(f"source:{source.id}", rate)
    if wait > 0:
        INBOUND.labels(source.provider, "rate_limited").inc()
        _refused(ctx, source.id, "rate_limited", f"over {rate} requests/s", client, headers)
        raise TooManyRequests(f"rate limit of {rate} requests per second exceeded", wait)
    if verified.challenge is not None:
        INBOUND.labels(source.provider, "challenge").inc()
        return Ingested("challenge", challenge=verified.challenge)

    digest = hashlib.sha256(body).hexdigest()
    delivery_id = verified.delivery_id or digest
    kind, data = event_type(verified.event_type), event_data(verified.payload, body)
    if source.transformation:
        try:
            found = await mapped(
                source.transformation,
                f"/in/{source.id}",
                stored_headers(headers),
                data,
                kind,
                ctx.transform_timeout_ms,
            )
        except TransformError as exc:
            # The operator's code failed, not the provider: it is asked to send again
            # later (by then the code may be fixed), and the refusal log says why.
            INBOUND.labels(source.provider, "transform_failed").inc()
            _refused(ctx, source.id, "transformation_failed", str(exc), client, headers)
            raise TransformFailed(f"the source's transformation failed: {exc}") from None
        if found is None:
            INBOUND.labels(source.provider, "cancelled").inc()
            _refused(
                ctx,
                source.id,
                "cancelled",
                "cancelled by the source's transformation",
                client,
                headers,
            )
            return Ingested("cancelled")
        kind, data = event_type(found[0]), found[1]
    try:
        published = await ctx.batcher.publish(
            Publish(
                kind,
                data,
                source_id=source.id,
                idempotency_key=_dedup_key(source.id, delivery_id),
                # A replay under a new, unsigned delivery id is still the same body: for as
                # long as events are kept (GATEWAY_RETENTION_DAYS), it is a duplicate too.
                content_key=f"body:{source.id}:{digest}" if source.deduplicate_body else None,
                received=Received(body, stored_headers(headers), verified.verification),
                schema_check=ctx.event_types if source.validate_data else None,
                ordering_key=ordering_key(data, source.config.options.get(ORDERING_KEY_FIELD)),
            )
        )
    except DataRefused as exc:
        # The provider sent it (it verified), so it is not counted as a failed credential.
        INBOUND.labels(source.provider, "invalid").inc()
        _refused(ctx, source.id, "invalid_data", exc.brief, client, headers)
        raise DataInvalid(exc.detail) from None
    status = "accepted" if published.created else "duplicate"
    INBOUND.labels(source.provider, status).inc()
    return Ingested(status, published.event.id)


def _refused(
    ctx: InboundContext,
    source_id: str,
    reason: str,
    message: str,
    client: str,
    headers: Mapping[str, str],
) -> None:
    if ctx.refusals is not None:
        ctx.refusals.refused(source_id, reason, message, client, headers)


def ordering_key(data: dict[str, Any], path: str | None) -> str | None:
    """The value at the source's `ordering_key_field`, when it is text or a whole number
    of at most 200 characters; otherwise the event has no key (it is sent unordered)."""
    if path is None:
        return None
    value = get_path(data, path)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= 200 and _is_storable(value):
        return value
    return None


def _dedup_key(source_id: str, delivery_id: str) -> str:
    if len(delivery_id) > 150 or not _is_storable(delivery_id):
        delivery_id = "sha256:" + hashlib.sha256(delivery_id.encode(errors="replace")).hexdigest()
    return f"src:{source_id}:{delivery_id}"


def event_type(provider_type: str | None) -> str:
    """The provider's type in the gateway's alphabet: `orders/create` becomes `orders.create`."""
    cleaned = _TYPE_CHARS.sub(".", provider_type or "").strip(".")[:255]
    return cleaned or "unknown"


def event_data(payload: Any, body: bytes) -> dict[str, Any]:
    """What endpoints receive as `data`: the provider's JSON object, else the body wrapped."""
    if isinstance(payload, dict) and _is_json_safe(payload):
        return payload
    if payload is not None and not isinstance(payload, dict) and _is_json_safe(payload):
        return {"payload": payload}
    text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return {"body": text}


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() not in _UNSTORED_HEADERS and _is_storable(value)
    }


def _is_storable(value: str) -> bool:
    try:
        storable(value)
    except ValueError:
        return False
    return True


def _is_json_safe(value: Any) -> bool:
    try:
        check_json_value(value)
    except ValueError:
        return False
    return True
