"""Endpoints that require authentication: basic, bearer, OAuth2 client credentials and mTLS,
sent to real local servers; credentials sealed at rest, masked when shown, revealed only
by `/auth`, and never in an attempt's error."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest

from tests.support.authservers import MtlsReceiver, Pki, TokenServer
from tests.support.gateway import Gateway
from tests.support.helpers import (
    assert_422_naming,
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply, wait_until


@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenServer]:
    server = TokenServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make()


@pytest.fixture(scope="module")
def mtls_receiver(pki: Pki) -> Iterator[MtlsReceiver]:
    server = MtlsReceiver(pki)
    server.start()
    yield server
    server.stop()


def _oauth2(tokens: TokenServer, **fields: str) -> dict[str, str]:
    client_id = "client-" + uuid.uuid4().hex[:8]
    secret = "cs_" + uuid.uuid4().hex
    tokens.clients[client_id] = secret
    return {
        "type": "oauth2",
        "token_url": tokens.url(),
        "client_id": client_id,
        "client_secret": secret,
        **fields,
    }


def _sole_delivery(gw: Gateway, event_id: str, status: str) -> dict[str, object]:
    [delivery] = wait_until(lambda: deliveries_of(gw, event_id), what="a delivery")
    return wait_delivery(gw, str(delivery["id"]), status)


def test_basic_and_bearer_reach_the_receiver(gw: Gateway, receiver: Receiver, path: str) -> None:
    make_endpoint(
        gw, receiver.url(path + "b"), auth={"type": "basic", "username": "u", "password": "p w"}
    )
    make_endpoint(gw, receiver.url(path + "t"), auth={"type": "bearer", "token": "tok_abc"})
    publish(gw)
    [basic] = receiver.wait_for(path + "b", 1)
    [bearer] = receiver.wait_for(path + "t", 1)
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"u:p w").decode()
    assert bearer.headers["authorization"] == "Bearer tok_abc"


def test_oauth2_token_is_fetched_once_for_many_deliveries(
    gw: Gateway, receiver: Receiver, path: str, tokens: TokenServer
) -> None:
    auth = _oauth2(tokens, scope="webhooks:write", audience="https://api.example")
    make_endpoint(gw, receiver.url(path), auth=auth)
    tokens.delay = 0.2  # attempts arriving meanwhile wait for the same fetch
    try:
        for _ in range(6):
            publish(gw)
        got = receiver.wait_for(path, 6)
    finally:
        tokens.delay = 0.0
    assert {r.headers["authorization"] for r in got} == {f"Bearer tok-{auth['client_id']}-1"}
    assert tokens.count(auth["client_id"]) == 1
    [form] = [r for r in tokens.requests if r["client_id"] == auth["client_id"]]
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "webhooks:write"
    assert form["audience"] == "https://api.example"


def test_oauth2_refetches_once_on_401_and_retries_in_the_same_attempt(
    gw: Gateway, receiver: Receiver, path: str, tokens: TokenServer
) -> None:
    auth = _oauth2(tokens)
    make_endpoint(gw, receiver.url(path), auth=auth)
    receiver.set(path, Reply(401), Reply(200))
    event = publish(gw)
    delivery = _sole_delivery(gw, event["id"], "succeeded")
    assert delivery["attempt_count"] == 1
    first, second = receiver.wait_for(path, 2)
    assert first.headers["authorization"] == f"Bearer tok-{auth['client_id']}-1"
    assert second.headers["authorization"] == f"Bearer tok-{auth['client_id']}-2"
    assert tokens.count(auth["client_id"]) == 2


def test_a_token_server_failure_fails_the_attempt_without_the_secret(
    gw: Gateway, receiver: Receiver, path: str, tokens: TokenServer
) -> None:
    auth = _oauth2(tokens)
    auth["client_secret"] = "cs_wrong_" + uuid.uuid4().hex  # the server does not know it
    endpoint = make_endpoint(gw, receiver.url(path), auth=auth)
    event = publish(gw)
    [delivery] = wait_until(lambda: deliveries_of(gw, event["id"]), what="a delivery")
    detail = wait_until(
        lambda: (d := gw.api.get(f"/v1/deliveries/{delivery['id']}").json())["attempts"] and d,
        what="an attempt",
    )
    error = detail["attempts"][0]["error"]
    assert "oauth2 token request to 127.0.0.1 answered 401 (invalid_client)" in error
    assert auth["client_secret"] not in str(detail)
    assert not receiver.received(path)
    gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"disabled": True})


def test_mtls_receiver_refuses_without_the_client_certificate_and_accepts_with_it(
    gw: Gateway, pki: Pki, mtls_receiver: MtlsReceiver, path: str
) -> None:
    mtls_receiver.clients.clear()  # the receiver serves both backends' runs
    certificate, key = pki.issue("gateway-client")
    stranger_cert, stranger_key = Pki.make("Other CA").issue("stranger")
    good = make_endpoint(
        gw,
        mtls_receiver.url(path),
        auth={
            "type": "mtls",
            "certificate": certificate,
            "private_key": key,
            "ca_bundle": pki.ca_cert,
        },
    )
    without = make_endpoint(gw, mtls_receiver.url(path + "x"))
    stranger = make_endpoint(
        gw,
        mtls_receiver.url(path + "y"),
        auth={
            "type": "mtls",
            "certificate": stranger_cert,
            "private_key": stranger_key,
            "ca_bundle": pki.ca_cert,
        },
    )
    event = publish(gw)
    ours = {d["endpoint_id"]: d for d in deliveries_of(gw, event["id"])}
    assert wait_delivery(gw, ours[good["id"]]["id"], "succeeded")
    assert mtls_receiver.clients == ["gateway-client"]
    for refused in (without, stranger):
        detail = wait_until(
            lambda r=refused: gw.api.get(f"/v1/deliveries/{ours[r['id']]['id']}").json()[
                "attempts"
            ],
            what="a failed attempt",
        )
        assert detail[0]["status_code"] is None
        assert key not in str(detail) and stranger_key not in str(detail)
    assert mtls_receiver.clients == ["gateway-client"]
    for endpoint in (without, stranger):
        gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"disabled": True})


def test_credentials_are_masked_revealed_on_request_and_sealed_at_rest(
    gw: Gateway, receiver: Receiver, path: str, tokens: TokenServer, pki: Pki
) -> None:
    auth = _oauth2(tokens, scope="a b")
    endpoint = make_endpoint(gw, receiver.url(path), auth=auth, tenant_id="acme")
    shown = {**auth, "client_secret": "********"}
    assert endpoint["auth"] == shown
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["auth"] == shown
    assert gw.api.get("/v1/endpoints").json()["data"][0]["auth"] == shown
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}/auth").json() == {"auth": auth}
    [stored] = gw.sql(f"SELECT auth FROM endpoint WHERE id = '{endpoint['id']}'")
    assert str(stored[0]).startswith("enc:v1:")
    assert auth["client_secret"] not in str(stored[0])
    # A tenant's key sees its own endpoint's, and no other tenant's.
    own = client_with(gw, create_key(gw, name="acme", tenant_id="acme")["key"])
    other = client_with(gw, create_key(gw, name="other", tenant_id="other")["key"])
    assert own.get(f"/v1/endpoints/{endpoint['id']}/auth").json() == {"auth": auth}
    assert other.get(f"/v1/endpoints/{endpoint['id']}/auth").status_code == 404
    # mTLS shows the certificate, masks the key.
    certificate, key = pki.issue("c")
    changed = gw.api.patch(
        f"/v1/endpoints/{endpoint['id']}",
        json={
            "url": "https://127.0.0.1:1/x",
            "auth": {"type": "mtls", "certificate": certificate, "private_key": key},
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["auth"] == {
        "type": "mtls",
        "certificate": certificate,
        "private_key": "********",
    }
    # PATCH with null removes it.
    removed = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"auth": None})
    assert removed.json()["auth"] is None
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}/auth").json() == {"auth": None}


@pytest.mark.parametrize(
    ("auth", "field", "message"),
    [
        ({"type": "digest"}, "auth", "does not match any of the expected tags"),
        ({"type": "basic", "username": "a:b", "password": "p"}, "username", "cannot contain"),
        ({"type": "bearer", "token": "a\nb"}, "token", "printable"),
        ({"type": "bearer"}, "token", "Field required"),
        (
            {"type": "oauth2", "token_url": "ftp://x/t", "client_id": "a", "client_secret": "b"},
            "token_url",
            "http or https",
        ),
        (
            {
                "type": "oauth2",
                "token_url": "http://127.0.0.2/token",
                "client_id": "a",
                "client_secret": "b",
            },
            "token_url",
            "loopback",
        ),
        ({"type": "mtls", "certificate": "nope", "private_key": "nope"}, "auth", "PEM X.509"),
    ],
)
def test_bad_auth_is_a_422_naming_it(
    gw: Gateway, receiver: Receiver, path: str, auth: dict[str, str], field: str, message: str
) -> None:
    response = gw.api.post("/v1/endpoints", json={"url": receiver.url(path), "auth": auth})
    assert_422_naming(response, field)
    assert message in response.text
    assert not gw.api.get("/v1/endpoints").json()["data"]


def test_mtls_key_must_match_the_certificate_and_the_url_be_https(
    gw: Gateway, receiver: Receiver, path: str, pki: Pki
) -> None:
    certificate, _ = pki.issue("a")
    _, other_key = pki.issue("b")
    mismatched = {"type": "mtls", "certificate": certificate, "private_key": other_key}
    response = gw.api.post(
        "/v1/endpoints", json={"url": "https://127.0.0.1:1/", "auth": mismatched}
    )
    assert_422_naming(response, "auth")
    assert "does not belong to the certificate" in response.text
    _, key = pki.issue("a")
    certificate, key = pki.issue("a")
    plain = gw.api.post(
        "/v1/endpoints",
        json={
            "url": receiver.url(path),
            "auth": {"type": "mtls", "certificate": certificate, "private_key": key},
        },
    )
    assert_422_naming(plain, "auth")
    assert "https" in plain.text


def test_the_token_url_is_refused_at_connect_time_like_an_endpoint_url(
    gw: Gateway, receiver: Receiver, path: str, tokens: TokenServer
) -> None:
    name = f"auth-{uuid.uuid4().hex[:8]}.example"
    # Public when saved, private when the token is fetched (DNS rebinding).
    gw.dns.resolver.script(name, ["93.184.216.34"], ["127.0.0.2"])
    auth = _oauth2(tokens)
    auth["token_url"] = f"http://{name}:{tokens.port}/token"
    endpoint = make_endpoint(gw, receiver.url(path), auth=auth)
    event = publish(gw)
    [delivery] = wait_until(lambda: deliveries_of(gw, event["id"]), what="a delivery")
    attempts = wait_until(
        lambda: gw.api.get(f"/v1/deliveries/{delivery['id']}").json()["attempts"],
        what="an attempt",
    )
    error = attempts[0]["error"]
    assert error.startswith(f"oauth2 token request to {name} refused:"), error
    assert "GATEWAY_ALLOWED_NETWORKS" in error
    assert tokens.count(auth["client_id"]) == 0
    assert not receiver.received(path)
    gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"disabled": True})
