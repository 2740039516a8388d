"""What the delivery code needs, built once per process (arq worker or embedded API)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from gateway.db import SessionMaker
from gateway.queue.dispatch import Dispatcher
from gateway.settings import Settings


@dataclass
class DeliveryContext:
    settings: Settings
    sessionmaker: SessionMaker
    client: httpx.AsyncClient
    dispatcher: Dispatcher
    # In-flight attempts of this process; waiting for a slot is not counted
    # against an attempt's timeout.
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.delivery_concurrency)
