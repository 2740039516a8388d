"""A dispatcher for tests that drive the delivery core in-process, without a queue."""

from __future__ import annotations

from typing import Any


class QueuedJobs:
    """A Dispatcher that keeps the jobs it is given, in order."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, tuple[Any, ...], str, float]] = []

    async def enqueue(
        self, function: str, *args: Any, job_id: str, defer_seconds: float = 0
    ) -> bool:
        self.jobs.append((function, args, job_id, defer_seconds))
        return True

    async def ping(self) -> bool:
        return True

    async def close(self, grace: float = 0) -> None:
        pass
