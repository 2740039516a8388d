"""API keys: created keys work, are stored hashed, can be revoked, and can be scoped to a tenant."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import client_with, create_key, make_endpoint, publish
from tests.support.receiver import Receiver, wait_until


def test_created_key_works_is_listed_without_the_key_and_stored_hashed(gw: Gateway) -> None:
    created = create_key(gw, name="ci")
    key = str(created["key"])
    assert key.startswith("gw_") and created["id"].startswith("key_")  # type: ignore[union-attr]
    with client_with(gw, key) as client:
        assert client.get("/v1/endpoints").status_code == 200
    listed = gw.api.get("/v1/api-keys").json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and listed[0]["key_prefix"] == key[:10]
    stored = gw.sql("SELECT key_hash FROM api_key")
    assert stored == [(hashlib.sha256(key.encode()).hexdigest(),)]
    assert all(key not in str(row) for row in gw.sql("SELECT * FROM api_key"))


def test_revoked_key_stops_working(gw: Gateway) -> None:
    created = create_key(gw)
    with client_with(gw, str(created["key"])) as client:
        assert client.get("/v1/endpoints").status_code == 200
        assert gw.api.delete(f"/v1/api-keys/{created['id']}").status_code == 204
        # Within the few seconds other processes may cache it; here at once.
        wait_until(lambda: client.get("/v1/endpoints").status_code == 401, 10, "revocation")
    assert gw.api.delete("/v1/api-keys/key_nope").status_code == 404


def test_unknown_key_is_401(gw: Gateway) -> None:
    with client_with(gw, "gw_not_a_real_key") as client:
        response = client.get("/v1/endpoints")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_tenant_key_sees_and_changes_only_its_tenant(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    mine = make_endpoint(gw, receiver.url(f"{path}/mine"), tenant_id="acme")
    theirs = make_endpoint(gw, receiver.url(f"{path}/theirs"), tenant_id="globex")
    their_event = publish(gw, "a.b", tenant_id="globex")
    key = str(create_key(gw, tenant_id="acme")["key"])
    with client_with(gw, key) as client:
        listed = client.get("/v1/endpoints").json()["data"]
        assert [e["id"] for e in listed] == [mine["id"]]
        assert client.get("/v1/endpoints", params={"tenant_id": "globex"}).json()["data"] == []
        # Another tenant's objects do not exist for this key: 404, not 403.
        for method, url in [
            ("GET", f"/v1/endpoints/{theirs['id']}"),
            ("PATCH", f"/v1/endpoints/{theirs['id']}"),
            ("DELETE", f"/v1/endpoints/{theirs['id']}"),
            ("GET", f"/v1/endpoints/{theirs['id']}/secret"),
            ("POST", f"/v1/endpoints/{theirs['id']}/secret/rotate"),
            ("POST", f"/v1/endpoints/{theirs['id']}/test"),
            ("GET", f"/v1/endpoints/{theirs['id']}/deliveries"),
            ("GET", f"/v1/events/{their_event['id']}"),
            ("GET", f"/v1/events/{their_event['id']}/deliveries"),
        ]:
            response = client.request(method, url, json={} if method == "PATCH" else None)
            assert response.status_code == 404, (method, url, response.text)
        assert (
            client.post(
                f"/v1/endpoints/{theirs['id']}/recover", json={"since": "2020-01-01T00:00:00Z"}
            ).status_code
            == 404
        )
        [their_delivery] = gw.api.get(f"/v1/events/{their_event['id']}/deliveries").json()["data"]
        assert client.get(f"/v1/deliveries/{their_delivery['id']}").status_code == 404
        assert client.post(f"/v1/deliveries/{their_delivery['id']}/retry").status_code == 404
        assert client.get("/v1/events").json()["data"] == []

        # What it creates and publishes is its tenant's, and reaches only its endpoints.
        created = client.post("/v1/endpoints", json={"url": receiver.url(f"{path}/new")})
        assert created.status_code == 201 and created.json()["tenant_id"] == "acme"
        other = client.post(
            "/v1/endpoints", json={"url": receiver.url(path), "tenant_id": "globex"}
        )
        assert other.status_code == 422
        moved = client.patch(f"/v1/endpoints/{mine['id']}", json={"tenant_id": "globex"})
        assert moved.status_code == 422
        event = client.post("/v1/events", json={"type": "a.b", "data": {}})
        assert event.status_code == 202 and event.json()["deliveries"] == 2
        assert event.json()["tenant_id"] == "acme"
        sneaky = client.post(
            "/v1/events", json={"type": "a.b", "data": {}, "endpoint_ids": [theirs["id"]]}
        )
        assert sneaky.status_code == 422
        # Operator-level routes are not a tenant's.
        assert client.get("/v1/sources").status_code == 403
        assert client.post("/v1/api-keys", json={"name": "x"}).status_code == 403
    receiver.wait_for(f"{path}/mine", 1)
    assert [r.headers["webhook-id"] for r in receiver.wait_for(f"{path}/theirs", 1)] == [
        their_event["id"]
    ]


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x", "tenant_id": ""}, {"name": "x", "extra": 1}]
)
def test_invalid_key_requests_are_422(gw: Gateway, body: dict[str, object]) -> None:
    assert gw.api.post("/v1/api-keys", json=body).status_code == 422


def test_cli_creates_a_working_key(gw: Gateway) -> None:
    result = gw.run_cli("keys", "create", "--name", "from-cli", "--tenant", "acme")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("gw_")
    with client_with(gw, key) as client:
        assert client.get("/v1/endpoints").status_code == 200
        assert client.get("/v1/sources").status_code == 403
