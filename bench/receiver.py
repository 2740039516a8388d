"""A counting webhook receiver for the benchmark: answers 204 to any POST, counts them."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

count = 0


async def receive(request: web.Request) -> web.Response:
    global count
    await request.read()
    count += 1
    return web.Response(status=204)


async def get_count(_request: web.Request) -> web.Response:
    return web.Response(text=str(count))


def main() -> None:
    app = web.Application()
    app.router.add_get("/count", get_count)
    app.router.add_post("/{tail:.*}", receive)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
