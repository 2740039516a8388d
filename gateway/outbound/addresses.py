"""Which addresses endpoints may reach: public ones, and private ones only when allowed.

Checked when an endpoint is saved and again at connect time (`GuardedResolver`),
so a name that later resolves somewhere private (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import AsyncResolver, DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# IPv6 ranges that only ever stand for an IPv4 address, on hosts or networks that
# translate them: refused whatever they embed, unless the embedded address itself
# is allowed (GATEWAY_ALLOWED_NETWORKS), in which case its rules apply.
_TRANSLATED = (
    (ipaddress.ip_network("::/96"), "an IPv4-compatible address (deprecated, RFC 4291)"),
    (ipaddress.ip_network("::ffff:0:0:0/96"), "an IPv4-translated address (SIIT, RFC 2765)"),
)
# Not globally reachable (IANA), though older Pythons call it global.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$"
)


class RefusedAddress(OSError):
    """The destination is on a network endpoints may not reach."""


def parse_ip(host: str) -> IPAddress | None:
    """The address a literal host denotes, decoding legacy forms (`2130706433`, `0177.0.0.1`)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress, allowed: Sequence[Network] = ()) -> str | None:
    """Why `ip` may not be reached, or None when it may."""
    if _allowed(ip, allowed):
        return None
    for network, what in _TRANSLATED:
        if ip in network and int(ip) > 1:  # `::` and `::1` are themselves, below
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            if _allowed(embedded, allowed):
                return None
            reason = refusal_reason(embedded, allowed)
            return f"{reason} (embedded in {ip})" if reason else f"{ip} is {what}"
    if ip in _LOCAL_NAT64:
        return f"{ip} is a private or reserved address (local-use NAT64)"
    inner = _embedded_ipv4(ip)
    if inner is not None:
        reason = refusal_reason(inner, allowed)
        return f"{reason} (embedded in {ip})" if reason else None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_private or not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


def _allowed(ip: IPAddress, allowed: Sequence[Network]) -> bool:
    return any(ip in net for net in allowed if net.version == ip.version)


def check_ip(ip: IPAddress, allowed: Sequence[Network]) -> None:
    reason = refusal_reason(ip, allowed)
    if reason:
        raise RefusedAddress(f"{reason}; set GATEWAY_ALLOWED_NETWORKS to allow it")


def make_resolver(nameservers: Sequence[str] = ()) -> AbstractResolver:
    """The system resolver, or c-ares asking `nameservers` (`host` or `host:port`)."""
    if nameservers:
        return AsyncResolver(nameservers=list(nameservers))
    return DefaultResolver()


async def check_url(url: str, allowed: Sequence[Network], nameservers: Sequence[str] = ()) -> None:
    """Save-time check: ValueError when the host is, or resolves only to, refused addresses.

    A name that does not resolve now is accepted: DNS may not exist yet, and the
    connect-time check applies to whatever it resolves to later.
    """
    host = check_url_form(url)
    ip = parse_ip(host)
    if ip is not None:
        reason = refusal_reason(ip, allowed)
        if reason:
            raise ValueError(f"url host {reason}; set GATEWAY_ALLOWED_NETWORKS to allow it")
        return
    resolver = make_resolver(nameservers)
    try:
        results = await resolver.resolve(host, 0, socket.AF_UNSPEC)
    except (OSError, UnicodeError):
        return
    finally:
        await resolver.close()
    reasons = [refusal_reason(ipaddress.ip_address(r["host"]), allowed) for r in results]
    if reasons and all(reasons):
        raise ValueError(
            f"url host {host} resolves only to refused addresses ({reasons[0]}); "
            "set GATEWAY_ALLOWED_NETWORKS to allow it"
        )


def check_url_form(url: str) -> str:
    """The URL's host; ValueError when the URL is not one an endpoint may have.

    Its addresses are not checked here: at connect time they always are.
    """
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("url must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("url must use http or https")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not contain credentials; send them with the endpoint's headers")
    host = parts.hostname
    if not host:
        raise ValueError("url must have a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("url has an invalid port") from None
    if port == 0:
        raise ValueError("url has an invalid port")
    if parse_ip(host) is None and not _HOSTNAME_RE.match(host):
        raise ValueError(f"url host {host!r} is not a valid host name")
    return host


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops refused addresses, so no connection is opened to one."""

    def __init__(self, allowed: Sequence[Network], nameservers: Sequence[str] = ()) -> None:
        self._allowed = list(allowed)
        self._inner = make_resolver(nameservers)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        reason = None
        for result in results:
            reason_here = refusal_reason(ipaddress.ip_address(result["host"]), self._allowed)
            if reason_here is None:
                kept.append(result)
            else:
                reason = reason_here
        if not kept:
            raise RefusedAddress(
                f"{host} resolves to {reason}; set GATEWAY_ALLOWED_NETWORKS to allow it"
            )
        return kept

    async def close(self) -> None:
        await self._inner.close()
