"""W1 with OAuth2: 10 endpoints per event, each authenticating with an OAuth2 client-
credentials token (fetched once per worker from a local token server, then cached),
against the same fan-out without authentication, in the same run on one stack
(target: at least 0.9 of it).

The drains take turns in the order A B B A (plain, oauth2, oauth2, plain, ...), each
kind draining its own backlog, and the better drain of each kind is compared: a slow
spell of the machine then costs both kinds alike. What is measured is the cached path:
opening the endpoint's auth and adding the header, once the token is in hand.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from bench import ledger
from bench.context import Run
from bench.drain import Drain, backlog_drain
from bench.harness import Stack
from bench.report import Row

PER_EVENT = 10
# A B B A, twice: each kind drains four times.
ORDER = ("plain", "oauth2", "oauth2", "plain") * 2


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


def _drain(run: Run, stack: Stack, name: str, token_url: str | None) -> tuple[Drain, bool]:
    event_type = f"w1o.{name}"
    ids = stack.endpoints(
        [run.receiver.url("w1o", name, f"e{i}") for i in range(PER_EVENT)], event_type
    )
    if token_url is not None:
        auth = {
            "type": "oauth2",
            "token_url": token_url,
            "client_id": "bench",
            "client_secret": "bench-secret",
        }
        for endpoint_id in ids:
            stack.admin("PATCH", f"/v1/endpoints/{endpoint_id}", json={"auth": auth})
    drain = backlog_drain(
        stack,
        run.receiver.arrivals,
        event_type,
        max(1, run.sizes.w1_deliveries // PER_EVENT),
        f"/w1o/{name}",
        PER_EVENT,
        1,
    )
    book = ledger.check(
        f"W1 {name}",
        stack.db_url,
        [event_type],
        drain.published,
        PER_EVENT,
        run.receiver.arrivals,
        run.receiver.base,
        drain.unanswered,
    )
    run.details[f"w1o_{name}"] = {**drain.summary(), "ledger": book.summary()}
    return drain, book.ok


def run_w1_oauth2(run: Run) -> list[Row]:
    drains: dict[str, list[tuple[Drain, bool]]] = {"plain": [], "oauth2": []}
    with _token_server() as (token_url, given), Stack(run.dir, "w1o") as stack:
        for turn, kind in enumerate(ORDER):
            url = token_url if kind == "oauth2" else None
            drains[kind].append(_drain(run, stack, f"{kind}{turn}", url))
    plain = max((d for d, _ok in drains["plain"]), key=lambda d: d.rate)
    best = max((d for d, _ok in drains["oauth2"]), key=lambda d: d.rate)
    ok = all(good for kind in drains.values() for _d, good in kind)
    turns = len(drains["oauth2"])
    run.details["w1o_tokens_fetched"] = len(given)
    return [
        Row(
            "W1 10 ep/event, each with OAuth2 (token cached)",
            best.rate,
            plain.rate,
            "W1 10 ep/event without auth",
            target=(">=", 0.9),
            void=not ok,
            note=f"better of {turns} drains each, in turns A B B A; {len(given)} tokens "
            f"fetched for {turns * PER_EVENT} endpoints; worker CPU {best.cpu_ms:.3f} ms per "
            f"delivery against {plain.cpu_ms:.3f} ms",
        ),
        Row(
            "W1 worker CPU per delivery, with OAuth2",
            best.cpu_ms,
            plain.cpu_ms,
            "without",
            unit="ms",
            void=not ok,
        ),
    ]
