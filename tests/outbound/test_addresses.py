"""Which destination addresses are refused, in every spelling."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from gateway.outbound.addresses import check_url, parse_ip, refusal_reason

REFUSED = [
    "127.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "198.18.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1",
    "::",
    # IPv4-compatible (::/96) and IPv4-translated (::ffff:0:0:0/96): refused whatever they
    # embed; local-use NAT64 (64:ff9b:1::/48) is not global either.
    "::127.0.0.1",
    "::ffff:0:127.0.0.1",
    "::8.8.8.8",
    "::ffff:0:8.8.8.8",
    "::10.0.0.1",
    "64:ff9b:1::7f00:1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("host", REFUSED)
def test_refused(host: str) -> None:
    ip = parse_ip(host)
    assert ip is not None, host
    assert refusal_reason(ip) is not None, host


@pytest.mark.parametrize("host", ALLOWED)
def test_public_addresses_allowed(host: str) -> None:
    ip = parse_ip(host)
    assert ip is not None and refusal_reason(ip) is None


def test_allowed_networks_open_a_range_in_all_its_spellings() -> None:
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    for host in (
        "127.0.0.1",
        "2130706433",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "::ffff:0:127.0.0.1",
    ):
        ip = parse_ip(host)
        assert ip is not None and refusal_reason(ip, allowed) is None, host
    assert refusal_reason(ipaddress.ip_address("10.0.0.1"), allowed) is not None


def test_names_are_not_addresses() -> None:
    assert parse_ip("example.com") is None
    assert parse_ip("1.example") is None


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/x", "http or https"),
        ("http:///path", "host"),
        ("http://10.0.0.1/hook", "private"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://localhost:9/hook", "resolves only to refused"),
        ("http://example.com:99999/", "port"),
    ],
)
def test_check_url_refuses_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asyncio.run(check_url(url, []))


def test_check_url_accepts_public_and_unresolvable_names() -> None:
    asyncio.run(check_url("https://8.8.8.8/hook", []))
    asyncio.run(check_url("https://no-such-host.invalid/hook", []))
