"""A real HTTP server on 127.0.0.1 that plays webhook endpoints for the tests.

Each test uses its own paths. A path answers 200 unless told otherwise with
`set()`: a sequence of replies consumed in order, the last one repeating.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering; a long one plays a hung endpoint


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    status: int = 200  # what it was answered


class Receiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: dict[str, list[Received]] = defaultdict(list)
        self._replies: dict[str, list[Reply]] = {}
        # Paths answering 503 to a random share of requests: (the share, its generator).
        self._flaky: dict[str, tuple[float, random.Random]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    async def _serve(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        with self._lock:
            replies = self._replies.get(path)
            reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else Reply()
            flaky = self._flaky.get(path)
            if flaky is not None and flaky[1].random() < flaky[0]:
                reply = Reply(503)
            self._received[path].append(
                Received(
                    path,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                    time.monotonic(),
                    reply.status,
                )
            )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._replies[path] = list(replies)

    def fail_randomly(self, path: str, share: float, seed: int = 0) -> None:
        """Answer 503 to this share of the path's requests, at random (seeded)."""
        with self._lock:
            self._flaky[path] = (share, random.Random(seed))

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return list(self._received.get(path, []))

    def wait_for(self, path: str, count: int, timeout: float = 15.0) -> list[Received]:
        def enough() -> list[Received] | None:
            got = self.received(path)
            return got if len(got) >= count else None

        return wait_until(enough, timeout, f"{count} requests at {path}")  # type: ignore[no-any-return]


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
