"""W4's bad endpoints: `/slow...` answers 204 after 10 s, `/never...` holds the request
until the client gives up (the gateway's delivery timeout), then lets it go.

    python bench/slow_receiver.py PORT [PORT ...]

Every port serves both routes; the bench uses one port per bad endpoint.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from aiohttp import web

SLOW_SECONDS = 10.0
# "Never" within any delivery timeout the gateway allows (at most 300 s); the handler
# is cancelled as soon as the client hangs up (handler_cancellation below).
NEVER_SECONDS = 3600.0


async def slow(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(SLOW_SECONDS)
    return web.Response(status=204)


async def never(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(NEVER_SECONDS)
    return web.Response(status=204)


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(ports: list[int]) -> None:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/slow{tail:.*}", slow)
    app.router.add_post("/never{tail:.*}", never)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    uvloop.run(serve([int(p) for p in sys.argv[1:]]))


if __name__ == "__main__":
    main()
