"""W1 with OAuth2: 10 endpoints per event, each authenticating with an OAuth2 client-
credentials token (fetched once per worker from a local token server, then cached),
against the same fan-out without authentication, in the same run on one stack
(target: at least 0.9 of it).

How the two are drained and compared: `w1_compare.py`. What is measured is the cached path:
opening the endpoint's auth and adding the header, once the token is in hand.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from bench.context import Run
from bench.harness import Stack
from bench.report import Row
from bench.w1_compare import PER_EVENT, compare_w1, rows


@contextmanager
def _token_server() -> Iterator[tuple[str, list[int]]]:
    """A token server on loopback: its URL, and a list counting the tokens it gave."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    given: list[int] = []

    async def token(request: web.Request) -> web.Response:
        await request.post()
        given.append(1)
        return web.json_response(
            {"access_token": f"bench-{len(given)}", "token_type": "Bearer", "expires_in": 3600}
        )

    async def serve() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/token", token)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}/token", given
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def run_w1_oauth2(run: Run) -> list[Row]:
    with _token_server() as (token_url, given), Stack(run.dir, "w1o") as stack:
        auth = {
            "type": "oauth2",
            "token_url": token_url,
            "client_id": "bench",
            "client_secret": "bench-secret",
        }
        compared = compare_w1(run, stack, "w1o", {"auth": auth})
    run.details["w1o_tokens_fetched"] = len(given)
    fetched = f"{len(given)} tokens fetched for {compared.turns * PER_EVENT} endpoints; "
    return rows(compared, "each with OAuth2 (token cached)", "without auth", 0.9, fetched)
