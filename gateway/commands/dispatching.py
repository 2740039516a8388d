"""How a command's work reaches the workers: arq when Redis is configured, else the
embedded server's sweeper."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.queue.dispatch import ArqDispatcher
    from gateway.settings import Settings


class CommandDispatcher:
    """A command's Dispatcher: arq when GATEWAY_REDIS_URL is set, else nothing at all.

    In embedded mode the work is committed as pending and `gateway serve`'s sweeper
    sends it; nothing can be handed to that process from here. Counts what was
    queued, for the note the command prints, and reports each job to `on_enqueue`.
    Made outside the event loop (it connects on first use), closed with `async with`.
    """

    def __init__(
        self, settings: Settings, on_enqueue: Callable[[str, tuple[Any, ...]], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_enqueue = on_enqueue
        self.queued = 0
        self.missed = 0
        self.arq: ArqDispatcher | None = None
        if settings.redis_url is not None:
            import logging

            from gateway.queue.dispatch import ArqDispatcher  # arq and redis: with Redis only

            self.arq = ArqDispatcher(settings.redis_url, settings.queue_name)
            # Its outage warning would repeat the note this command prints.
            logging.getLogger("gateway.queue").setLevel(logging.ERROR)

    async def enqueue(
        self, function: str, *args: Any, job_id: str, defer_seconds: float = 0
    ) -> bool:
        done = self.arq is not None and await self.arq.enqueue(
            function, *args, job_id=job_id, defer_seconds=defer_seconds
        )
        if done:
            self.queued += 1
        else:
            self.missed += 1
        if self.on_enqueue is not None:
            self.on_enqueue(function, args)
        return done

    async def ping(self) -> bool:
        return self.arq is None or await self.arq.ping()

    async def close(self, grace: float = 0) -> None:
        if self.arq is not None:
            await self.arq.close(grace)

    async def __aenter__(self) -> CommandDispatcher:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def summary(self) -> str:
        """What became of the work, for the user."""
        pickup = self.settings.sweep_grace + self.settings.sweep_interval
        if self.arq is None:
            return (
                "GATEWAY_REDIS_URL is not set (embedded mode), so nothing was queued: "
                f"the running `gateway serve` picks the work up within about {pickup:g} s."
            )
        if self.missed:
            return (
                f"[yellow]Redis did not take {self.missed} of {self.missed + self.queued} "
                "jobs[/yellow]: the work is stored as pending, and the workers' sweeper "
                "sends it once Redis answers (check with `gateway doctor`)."
            )
        return "queued for the workers."
