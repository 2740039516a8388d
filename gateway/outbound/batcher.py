"""Group concurrent publishes into one transaction (group commit, see `gateway.groupcall`).

Each API or inbound request hands its event to the batcher and waits for it to
be committed; under load the per-transaction cost (round trips, commit, ORM
work) is shared by many requests. The answer still comes only after the commit:
a 202 means stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from gateway.db import SessionMaker
from gateway.groupcall import GroupCall
from gateway.outbound.fanout import Publish, Published, publish_many
from gateway.queue.dispatch import Dispatcher

MAX_BATCH = 200


class PublishBatcher:
    def __init__(
        self, sessionmaker: SessionMaker, dispatcher: Dispatcher, lease: timedelta | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._dispatcher = dispatcher
        self._lease = lease  # deliveries are stored leased to their jobs (`publish_many`)
        self._group: GroupCall[Publish, Published] = GroupCall(self._publish_many, MAX_BATCH)

    async def publish(self, item: Publish) -> Published:
        return await self._group(item)

    async def _publish_many(self, items: list[Publish]) -> Sequence[Published | Exception]:
        async with self._sessionmaker() as session:
            return await publish_many(session, self._dispatcher, items, self._lease)

    async def close(self) -> None:
        await self._group.close()
