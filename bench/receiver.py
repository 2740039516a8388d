"""Fallback receiver, used only when nginx cannot be had: aiohttp on uvloop answering 204.

It writes the same access log as nginx's `bench` format (`msec webhook-id uri status`),
so the rest of the benchmark cannot tell them apart. It is some 5-10x slower than
nginx; the bench says so in its output when it runs on this one.

    python bench/receiver.py PORT ACCESS_LOG
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop
from aiohttp import web

FLUSH_SECONDS = 0.01  # as nginx's `flush=10ms`


def make_app(log_path: str) -> web.Application:
    pending: list[str] = []
    log = open(log_path, "a", buffering=1 << 16)  # closed in `flusher`

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        pending.append(
            f"{time.time():.3f} {request.headers.get('webhook-id', '-')} {request.path_qs} 204\n"
        )
        return web.Response(status=204)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def flusher(_app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                if pending:
                    log.write("".join(pending))
                    pending.clear()
                    log.flush()

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        log.write("".join(pending))
        log.close()

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", receive)
    app.cleanup_ctx.append(flusher)
    return app


def main() -> None:
    web.run_app(
        make_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
