"""The one shared HTTP client for deliveries: aiohttp, with the guard on every connect.

Deliveries go out on aiohttp directly. httpx was measured here first, on its own
pool (which slows down as concurrency grows, encode/httpx#3215) and over the
`httpx-aiohttp` transport: building and wrapping each request in httpx then
cost more of a worker's CPU than sending it did (`make bench` prints both as
yardsticks). What httpx gave is kept here by hand: no redirects followed
(`allow_redirects=False` on every request, in `delivery.py`), no cookies, no
proxies from the environment, one deadline per attempt, and a body read only up
to its cap.
"""

from __future__ import annotations

import aiohttp

from gateway.outbound.addresses import GuardedResolver
from gateway.settings import Settings

USER_AGENT = "hookgate/0.1"


def create_delivery_client(settings: Settings) -> aiohttp.ClientSession:
    """Made inside the running loop, as aiohttp requires."""
    connector = aiohttp.TCPConnector(
        # No limits of aiohttp's own: attempts are bounded per endpoint, per tenant and
        # per process before they get here (`load.py`). A total or per-host limit here
        # would make an answering endpoint's attempt wait behind hanging ones, on a
        # host they share or in the process as a whole.
        limit=0,
        limit_per_host=0,
        # Every name is resolved at every connect through the guard; nothing is cached,
        # so no cached answer skips it. Literal addresses are checked before sending.
        resolver=GuardedResolver(settings.allowed_networks, settings.dns_servers),
        use_dns_cache=False,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # One client serves every endpoint: a cookie one endpoint sets must never be
        # sent to another, so none are kept.
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"user-agent": USER_AGENT},
        # The answer is kept as it came (its first 4 KiB), so none is asked for
        # compressed; nor is `Accept: */*` worth sending on every request.
        skip_auto_headers=("Accept-Encoding", "Accept"),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=settings.delivery_timeout),
        trust_env=False,
    )
