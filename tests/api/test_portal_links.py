"""`/v1/portal-links`: links to one tenant's portal, their bounds, and revoking them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.dns import ScriptedDNS
from tests.support.gateway import Gateway, own_gateway
from tests.support.helpers import assert_422_naming, client_with, create_key, parse_time


def _link(gw: Gateway, **body: object) -> httpx.Response:
    return gw.api.post("/v1/portal-links", json={"tenant_id": "acme", **body})


def _enter(gw: Gateway, url: str) -> httpx.Response:
    parts = urlsplit(url)
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as client:
        return client.get(f"{parts.path}?{parts.query}")


def test_a_link_expires_after_an_hour_unless_told(gw: Gateway) -> None:
    before = datetime.now(UTC)
    answer = _link(gw)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"url", "expires_at"}
    expires = parse_time(body["expires_at"])
    assert before + timedelta(seconds=3590) < expires < before + timedelta(seconds=3660)
    parts = urlsplit(body["url"])
    # Built on the address the request came to, since GATEWAY_PUBLIC_URL is not set.
    assert f"{parts.scheme}://{parts.netloc}" == f"http://127.0.0.1:{gw.port}"
    assert parts.path == "/portal/enter" and parse_qs(parts.query)["token"]

    week = _link(gw, expires_in=7 * 24 * 3600)
    assert week.status_code == 201, week.text
    assert parse_time(week.json()["expires_at"]) > before + timedelta(days=6, hours=23)


def test_expires_in_is_one_second_to_seven_days(gw: Gateway) -> None:
    for bad in (0, -5, 7 * 24 * 3600 + 1, "soon", None):
        assert_422_naming(_link(gw, expires_in=bad), "expires_in")
    assert_422_naming(gw.api.post("/v1/portal-links", json={}), "tenant_id")
    assert_422_naming(gw.api.post("/v1/portal-links", json={"tenant_id": ""}), "tenant_id")
    assert_422_naming(_link(gw, unknown=1), "unknown")
    assert _link(gw, expires_in=1).status_code == 201


def test_only_admin_keys_create_or_revoke_links(gw: Gateway) -> None:
    key = create_key(gw, name="acme only", tenant_id="acme")["key"]
    with client_with(gw, key) as tenant:
        created = tenant.post("/v1/portal-links", json={"tenant_id": "acme"})
        assert created.status_code == 403, created.text
        revoked = tenant.post("/v1/portal-links/revoke", json={"tenant_id": "acme"})
        assert revoked.status_code == 403, revoked.text
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as anonymous:
        assert anonymous.post("/v1/portal-links", json={"tenant_id": "acme"}).status_code == 401


def test_a_link_opens_a_session_and_revoking_voids_it(gw: Gateway) -> None:
    url = _link(gw).json()["url"]
    opened = _enter(gw, url)
    assert opened.status_code == 303 and opened.headers["location"] == "/portal"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/portal" in cookie and "SameSite=lax" in cookie

    assert gw.api.post("/v1/portal-links/revoke", json={"tenant_id": "acme"}).status_code == 204
    refused = _enter(gw, url)
    assert refused.status_code == 403 and "revoked" in refused.text
    # No session: at most the deletion of one.
    assert "Max-Age=0" in refused.headers.get("set-cookie", "Max-Age=0")
    # Another tenant's links and the links made afterwards still work.
    other = gw.api.post("/v1/portal-links", json={"tenant_id": "globex"}).json()["url"]
    assert _enter(gw, other).status_code == 303
    assert _enter(gw, _link(gw).json()["url"]).status_code == 303


def test_public_url_makes_the_link_absolute(dns: ScriptedDNS, tmp_path: Path) -> None:
    with own_gateway(
        "sqlite", tmp_path, dns, GATEWAY_PUBLIC_URL="https://hooks.example.com/"
    ) as gw:
        url = gw.api.post("/v1/portal-links", json={"tenant_id": "acme"}).json()["url"]
    assert url.startswith("https://hooks.example.com/portal/enter?token=")
