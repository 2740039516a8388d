"""Group concurrent publishes into one transaction (group commit).

Each API or inbound request hands its event to the batcher and waits for it to
be committed. While one batch is being written, the requests that arrive
meanwhile queue up and become the next batch, so a lone request is written at
once, and under load the per-transaction cost (round trips, commit, ORM work)
is shared by many. The answer still comes only after the commit: a 202 means
stored.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.db import SessionMaker
from gateway.outbound.fanout import Publish, Published, publish_many
from gateway.queue.dispatch import Dispatcher

log = logging.getLogger("gateway.batcher")

MAX_BATCH = 200


class PublishBatcher:
    def __init__(self, sessionmaker: SessionMaker, dispatcher: Dispatcher) -> None:
        self._sessionmaker = sessionmaker
        self._dispatcher = dispatcher
        self._waiting: list[tuple[Publish, asyncio.Future[Published]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def publish(self, item: Publish) -> Published:
        future: asyncio.Future[Published] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                async with self._sessionmaker() as session:
                    results = await publish_many(
                        session, self._dispatcher, [item for item, _ in batch])
            except Exception as exc:  # the database is down, say: every request hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
