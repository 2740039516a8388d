"""Re-seal every stored secret under the current `GATEWAY_SECRET_KEY` (`gateway secret-key rotate`).

Run with the new key in GATEWAY_SECRET_KEY and the old one in GATEWAY_OLD_SECRET_KEYS:
running processes with both configured keep working throughout. Rows are re-sealed
in small transactions, so nothing is locked for long; running it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlmodel import col

from gateway.crypto import SecretBox
from gateway.db import SessionMaker
from gateway.inbound.sources import SECRET as SOURCE_SECRET
from gateway.outbound.endpoint_auth import SEALED_AS as ENDPOINT_AUTH
from gateway.outbound.endpoints import SECRET as ENDPOINT_SECRET
from gateway.store.models import Endpoint, Source

BATCH = 200


async def count_rows(sessionmaker: SessionMaker) -> int:
    async with sessionmaker() as session:
        endpoints = await session.scalar(select(func.count()).select_from(Endpoint))
        sources = await session.scalar(select(func.count()).select_from(Source))
    return (endpoints or 0) + (sources or 0)


async def rotate(
    sessionmaker: SessionMaker, box: SecretBox, progress: Callable[[int], None] = lambda n: None
) -> int:
    """Re-seal what is not sealed under the current key; returns the rows changed."""
    changed = 0
    models: tuple[type[Endpoint] | type[Source], ...] = (Endpoint, Source)
    for model in models:
        last = ""
        while True:
            async with sessionmaker() as session:
                rows: list[Endpoint | Source] = list(
                    await session.scalars(
                        select(model)
                        .where(col(model.id) > last)
                        .order_by(col(model.id))
                        .limit(BATCH)
                    )
                )
                if not rows:
                    break
                for row in rows:
                    if _reseal(row, box):
                        changed += 1
                await session.commit()
                last = rows[-1].id
            progress(len(rows))
    return changed


def _reseal(row: Endpoint | Source, box: SecretBox) -> bool:
    def again(value: str, purpose: str) -> str:
        return value if box.is_current(value) else box.seal(box.open(value, purpose), purpose)

    def sealed(row: Endpoint | Source) -> tuple[object, ...]:
        return tuple(
            getattr(row, name, None) for name in ("secret", "previous_secret", "headers", "auth")
        )

    before = sealed(row)
    if isinstance(row, Source):
        row.secret = again(row.secret, SOURCE_SECRET)
    else:
        row.secret = again(row.secret, ENDPOINT_SECRET)
        if row.previous_secret:
            row.previous_secret = again(row.previous_secret, ENDPOINT_SECRET)
        row.headers = {
            name: again(value, "endpoint.header") for name, value in (row.headers or {}).items()
        }
        if row.auth:
            row.auth = again(row.auth, ENDPOINT_AUTH)
    return before != sealed(row)
