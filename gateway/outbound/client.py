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

import asyncio
import socket
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.connector import cert_errors, ssl_errors

from gateway.outbound.addresses import GuardedResolver
from gateway.settings import Settings

USER_AGENT = "hookgate/0.1"


def create_delivery_client(settings: Settings) -> aiohttp.ClientSession:
    """Made inside the running loop, as aiohttp requires."""
    proxy = urlsplit(settings.egress_proxy) if settings.egress_proxy else None
    connector_class: Callable[..., aiohttp.TCPConnector] = (
        partial(TunnelConnector, proxy.hostname or "", proxy.port or 0)
        if proxy
        else aiohttp.TCPConnector
    )
    connector = connector_class(
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


class TunnelConnector(aiohttp.TCPConnector):
    """Connects through an HTTP CONNECT proxy (GATEWAY_EGRESS_PROXY) to addresses already
    checked: the guarded resolver, or the literal check before sending, picked them, and
    the proxy is asked for that IP, never the name, so it cannot resolve it elsewhere.
    TLS runs inside the tunnel, end to end with the receiver."""

    def __init__(self, proxy_host: str, proxy_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._proxy = (proxy_host, proxy_port)

    async def _wrap_create_connection(  # type: ignore[override]
        self,
        *args: Any,
        addr_infos: list[Any],
        req: aiohttp.ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, Any]:
        # aiohttp tries the next address when this one fails, as it does directly.
        address = addr_infos[0][4]
        try:
            async with asyncio.timeout(timeout.sock_connect):
                sock = await open_tunnel(self._proxy, address[0], address[1])
            try:
                return await asyncio.get_running_loop().create_connection(  # type: ignore[return-value]
                    *args, **kwargs, sock=sock
                )
            except BaseException:
                sock.close()
                raise
        except cert_errors as exc:
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except ssl_errors as exc:
            raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise client_error(req.connection_key, exc) from exc


PROXY_ANSWER_LIMIT = 16_384


async def open_tunnel(proxy: tuple[str, int], host: str, port: int) -> socket.socket:
    """A socket connected to `host` (an IP) through the proxy's CONNECT."""
    loop = asyncio.get_running_loop()
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    infos = await loop.getaddrinfo(*proxy, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"egress proxy {proxy[0]} does not resolve")
    family, kind, proto, _, proxy_address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, proxy_address)
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise OSError("the egress proxy closed the connection")
            head += chunk
            if len(head) > PROXY_ANSWER_LIMIT:
                raise OSError("the egress proxy's answer is too long")
        # The client speaks first in HTTP and TLS: anything after the answer is wrong.
        if not head.endswith(b"\r\n\r\n"):
            raise OSError("the egress proxy sent data before the tunnel was used")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("2"):
            raise OSError(f"the egress proxy refused CONNECT {target}: {status_line[:100]}")
    except BaseException:
        sock.close()
        raise
    return sock
