"""Run concurrent calls as one batch call (the group commit pattern).

Each caller hands over one item and waits for its own result. While a batch is
running, the items that arrive meanwhile queue up and become the next batch, so a
lone call runs at once, and under load the fixed cost of a call (a transaction,
its round trips, compiling its statements) is shared by many callers. Publishing
groups events into one transaction this way; delivery groups its claims and its
records of attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Runs a batch; returns one result per item, in order. An exception among the
# results goes to that item's caller; an exception raised goes to every caller.
BatchFunction = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class GroupCall(Generic[T, R]):
    def __init__(self, run: BatchFunction[T, R], max_batch: int) -> None:
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_all())
        return await future

    async def _run_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # the database is down, say: every caller hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        """Wait for the batches under way."""
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
