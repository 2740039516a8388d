"""What the delivery code needs, built once per process (arq worker or embedded API)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.crypto import SecretBox
from gateway.db import SessionMaker
from gateway.groupcall import GroupCall
from gateway.outbound.credentials import Credentials
from gateway.outbound.load import EndpointLoads
from gateway.outbound.ratelimit import MemoryRateLimiter, RateLimiter
from gateway.outbound.streams import MemoryHub, StreamHub
from gateway.queue.dispatch import Dispatcher
from gateway.settings import Settings

log = logging.getLogger("gateway.delivery")


@dataclass
class DeliveryContext:
    settings: Settings
    sessionmaker: SessionMaker
    client: aiohttp.ClientSession
    dispatcher: Dispatcher
    box: SecretBox  # opens the endpoint secrets and header values stored sealed
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    # Where stream endpoints' attempts are offered to their clients (`streams.py`).
    streams: StreamHub = field(default_factory=MemoryHub)
    # Attempts that outlived their job's patience, and records that outlived theirs,
    # finishing in the background.
    stragglers: set[asyncio.Task[None]] = field(default_factory=set)
    # Outcomes of attempts whose records are being written in the background.
    unrecorded: int = 0
    # Signing keys by their sealed form, opened once per process (see `delivery.py`).
    signing_keys: dict[str, bytes] = field(default_factory=dict)
    # Endpoints' auth opened, OAuth2 tokens and mTLS contexts (`credentials.py`).
    credentials: Credentials = field(default_factory=Credentials)
    # Attempts in flight per endpoint, per tenant and in the process's slots, in a fast
    # and a slow lane (`load.py`); waiting for a slot is not counted against an
    # attempt's timeout.
    loads: EndpointLoads = field(init=False)
    # Endpoints whose half-open breaker has a probe in flight from this process, and
    # since when (time.monotonic()).
    probing: dict[str, float] = field(default_factory=dict)
    # The claims, and the records, of jobs running at once, each made in one
    # transaction; made on first use by `delivery.py`, which owns their types.
    claims: GroupCall[Any, Any] | None = None
    # The reads of jobs that carry their deliveries' leases, likewise.
    leases: GroupCall[Any, Any] | None = None
    records: GroupCall[Any, Any] | None = None

    def __post_init__(self) -> None:
        self.loads = EndpointLoads(
            self.settings.connections_per_host, slots=self.settings.delivery_concurrency
        )

    def keep(self, task: asyncio.Task[None]) -> None:
        """Let `task` (attempts and their record, or a record) finish in the background;
        its failure is logged, and its deliveries' leases lapse, so the sweeper sends
        them again, as for a worker that died."""
        self.stragglers.add(task)
        task.add_done_callback(self._kept_done)

    def _kept_done(self, task: asyncio.Task[None]) -> None:
        self.stragglers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "recording attempts in the background failed; the sweeper will send them again",
                exc_info=task.exception(),
            )

    async def drain(self, grace: float) -> None:
        """Let background attempts and records finish for up to `grace` seconds, then
        cancel them.

        A cancelled attempt keeps its lease until it lapses; the sweeper then
        sends it again, so nothing is lost, at worst sent twice.
        """
        if self.stragglers:
            await asyncio.wait(set(self.stragglers), timeout=grace)
        for task in set(self.stragglers):
            task.cancel()
        await asyncio.gather(*self.stragglers, return_exceptions=True)
