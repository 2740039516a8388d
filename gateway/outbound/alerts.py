"""Warnings about a failing endpoint: `endpoint.failing` (50, 70, 90% of the way to being
disabled), `endpoint.disabled` and `endpoint.recovered`, as events and by email.

Each is published like any event, with the endpoint's tenant, so that an operator's
endpoint subscribed to `endpoint.*` receives it. When GATEWAY_SMTP_URL is set and the
endpoint has a `contact_email`, the same warning is mailed too, at most one an hour per
endpoint (the slot is claimed in `endpoint.warning_emailed_at` by a conditional
UPDATE, so that several workers send one). Mail goes in a task of its own, with a
deadline: a slow or absent mail server delays the mail, never a delivery; when it
fails, the slot is given back, and the sweeper (`mail_unsent`) or the next warning
sends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Row, or_, select, update

from gateway.mail import MailError, parse_url, send
from gateway.outbound.context import DeliveryContext
from gateway.outbound.fanout import publish
from gateway.store.models import Attempt, Endpoint, table
from gateway.timeutil import rfc3339, utcnow

log = logging.getLogger("gateway.alerts")

_ENDPOINT = table(Endpoint)
_ATTEMPT = table(Attempt)
EMAIL_INTERVAL = timedelta(hours=1)  # at most one warning email per endpoint in this
LAST_ERRORS = 5  # recent failed attempts quoted in an email
# Mails being sent, referenced so that they are not collected mid-flight.
_sending: set[asyncio.Task[None]] = set()


async def announce(
    ctx: DeliveryContext, endpoint: Row[Any], kind: str, data: dict[str, Any]
) -> None:
    """Publish `endpoint.<kind>` about the endpoint, and mail it to its contact."""
    data = {"endpoint_id": endpoint.id, "tenant_id": endpoint.tenant_id, **data}
    async with ctx.sessionmaker() as session:
        await publish(
            session,
            ctx.dispatcher,
            event_type=f"endpoint.{kind}",
            data=data,
            tenant_id=endpoint.tenant_id,
            not_to=endpoint.id,
        )
    if ctx.settings.smtp_url and endpoint.contact_email:
        _mail_later(ctx, endpoint, kind, data)


def _mail_later(ctx: DeliveryContext, endpoint: Row[Any], kind: str, data: dict[str, Any]) -> None:
    """Send in a task of its own: nobody waits for the mail server."""
    task = asyncio.create_task(_mail(ctx, endpoint, kind, data))
    _sending.add(task)
    task.add_done_callback(_sending.discard)


async def _mail(ctx: DeliveryContext, endpoint: Row[Any], kind: str, data: dict[str, Any]) -> None:
    c = _ENDPOINT.c
    now = utcnow()
    try:
        async with ctx.sessionmaker() as session, session.begin():
            claimed = (
                await session.execute(
                    update(_ENDPOINT)
                    .where(
                        c.id == endpoint.id,
                        or_(
                            c.warning_emailed_at.is_(None),
                            c.warning_emailed_at <= now - EMAIL_INTERVAL,
                        ),
                    )
                    .values(warning_emailed_at=now)
                    .returning(c.contact_email)
                )
            ).first()
            if claimed is None:
                log.info("endpoint %s: warning email skipped (one an hour)", endpoint.id)
                return
            errors = (
                await session.execute(
                    select(_ATTEMPT.c.started_at, _ATTEMPT.c.status_code, _ATTEMPT.c.error)
                    .where(_ATTEMPT.c.endpoint_id == endpoint.id)
                    .order_by(_ATTEMPT.c.started_at.desc())
                    .limit(LAST_ERRORS)
                )
            ).all()
        assert ctx.settings.smtp_url is not None
        subject, text = compose(endpoint, kind, data, errors)
        await send(
            parse_url(ctx.settings.smtp_url),
            ctx.settings.smtp_from,
            claimed.contact_email,
            subject,
            text,
        )
        log.info("endpoint %s: %s warning emailed", endpoint.id, kind)
    except MailError as exc:
        log.warning("endpoint %s: warning email not sent, tried again later: %s", endpoint.id, exc)
        await _give_back(ctx, endpoint.id, now)
    except Exception:  # a mail's failure is logged, never raised into anyone's work
        log.exception("endpoint %s: warning email failed", endpoint.id)
        await _give_back(ctx, endpoint.id, now)


async def mail_unsent(ctx: DeliveryContext, limit: int = 20) -> int:
    """Mail again the warnings whose email failed (run by the sweeper): endpoints warned
    since their last success whose email slot is free because no mail went out. Each is
    claimed as any warning's mail is, so workers sweeping at once send one."""
    if not ctx.settings.smtp_url:
        return 0
    c = _ENDPOINT.c
    async with ctx.sessionmaker() as session:
        rows = (
            await session.execute(
                select(_ENDPOINT)
                .where(
                    c.warned_percent > 0,
                    c.warning_emailed_at.is_(None),
                    c.contact_email.is_not(None),
                )
                .limit(limit)
            )
        ).all()
    for endpoint in rows:
        if endpoint.disabled:
            kind, data = "disabled", {"reason": endpoint.disabled_reason}
        else:
            kind, data = "failing", {"percent": endpoint.warned_percent}
        _mail_later(ctx, endpoint, kind, data)
    return len(rows)


async def _give_back(ctx: DeliveryContext, endpoint_id: str, claimed_at: datetime) -> None:
    """The slot claimed for a mail that was not sent: the next warning may take it."""
    c = _ENDPOINT.c
    try:
        async with ctx.sessionmaker() as session, session.begin():
            await session.execute(
                update(_ENDPOINT)
                .where(c.id == endpoint_id, c.warning_emailed_at == claimed_at)
                .values(warning_emailed_at=None)
            )
    except Exception:
        log.exception("endpoint %s: could not free its warning email slot", endpoint_id)


def _shown_url(url: str) -> str:
    """The URL without credentials or query, which may carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def compose(
    endpoint: Row[Any], kind: str, data: dict[str, Any], errors: Sequence[Row[Any, Any, Any]]
) -> tuple[str, str]:
    """The subject and text of a warning email."""
    url = _shown_url(endpoint.url)
    if kind == "failing":
        subject = f"Webhook endpoint failing: {data.get('percent')}% of the way to disabled"
        what = (
            f"Deliveries to this endpoint keep failing. It is {data.get('percent')}% of the "
            f"way to being disabled ({data.get('rule_text', '')})."
        )
        todo = (
            "Check that the receiver is up and answers 2xx quickly, and look at the errors "
            "below. Once it answers again, the warnings stop and its failed deliveries can "
            "be re-sent (POST /v1/endpoints/{id}/recover)."
        )
    elif kind == "disabled":
        subject = "Webhook endpoint disabled"
        what = f"The gateway disabled this endpoint: {data.get('reason')}."
        todo = (
            "Fix the receiver, enable the endpoint again (PATCH /v1/endpoints/{id} with "
            '{"disabled": false}), then re-send what it missed (POST '
            "/v1/endpoints/{id}/recover)."
        )
    else:
        subject = "Webhook endpoint recovered"
        what = "Deliveries to this endpoint succeed again."
        todo = "Nothing; failed deliveries can be re-sent with POST /v1/endpoints/{id}/recover."
    lines = [what, "", f"Endpoint: {endpoint.id}", f"URL: {url}"]
    if endpoint.tenant_id:
        lines.append(f"Tenant: {endpoint.tenant_id}")
    if errors:
        lines += ["", "Latest attempts:"]
        lines += [
            f"- {rfc3339(e.started_at)}: "
            + (f"HTTP {e.status_code}" if e.status_code is not None else "no answer")
            + (f" ({e.error})" if e.error else "")
            for e in errors
        ]
    lines += ["", "What to do: " + todo.replace("{id}", endpoint.id)]
    return subject, "\n".join(lines) + "\n"
