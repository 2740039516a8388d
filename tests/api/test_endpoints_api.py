"""The endpoint management contract (the OpenAPI document): CRUD, secrets, validation, auth,
health routes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import (
    anonymous_client,
    assert_422_naming,
    deliveries_of,
    error_locations,
    make_endpoint,
    oneshot_client,
    parse_time,
    post_raw,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, wait_until

VALID_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
UNKNOWN_ENDPOINT = "ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
ENDPOINT_FIELDS = {
    "id",
    "url",
    "tenant_id",
    "description",
    "event_types",
    "source_ids",
    "headers",
    "rate_limit",
    "disabled",
    "created_at",
    "updated_at",
}


# create, read


def test_create_returns_every_field_and_a_generated_secret(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    before = datetime.now(UTC)
    source = gw.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "a-github-secret"}
    ).json()
    response = gw.api.post(
        "/v1/endpoints",
        json={
            "url": receiver.url(path),
            "description": "billing hooks",
            "event_types": ["invoice.*", "user.created"],
            "source_ids": [source["id"]],
            "headers": {"X-Team": "billing"},
            "rate_limit": 10,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= ENDPOINT_FIELDS | {"secret"}
    assert body["id"].startswith("ep_")
    assert body["url"] == receiver.url(path)
    assert body["tenant_id"] is None  # endpoints filtering on sources have none
    assert body["description"] == "billing hooks"
    assert body["event_types"] == ["invoice.*", "user.created"]
    assert body["source_ids"] == [source["id"]]
    assert body["headers"] == {"X-Team": "billing"}
    assert body["rate_limit"] == 10
    assert body["disabled"] is False
    created = parse_time(body["created_at"])
    assert before - timedelta(minutes=1) < created < datetime.now(UTC) + timedelta(minutes=1)
    parse_time(body["updated_at"])
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret[len("whsec_") :], validate=True)) <= 64


def test_create_with_minimal_body_has_defaults(gw: Gateway, receiver: Receiver, path: str) -> None:
    body = make_endpoint(gw, receiver.url(path))
    assert body["tenant_id"] is None
    assert body["description"] is None
    assert body["event_types"] is None
    assert body["source_ids"] is None
    assert body["headers"] == {}
    assert body["rate_limit"] is None
    assert body["disabled"] is False
    assert body["secret"].startswith("whsec_")


def test_each_endpoint_gets_its_own_generated_secret(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    first = make_endpoint(gw, receiver.url(f"{path}/a"))
    second = make_endpoint(gw, receiver.url(f"{path}/b"))
    assert first["secret"] != second["secret"]
    assert first["id"] != second["id"]


def test_create_keeps_a_given_valid_secret(gw: Gateway, receiver: Receiver, path: str) -> None:
    body = make_endpoint(gw, receiver.url(path), secret=VALID_SECRET)
    assert body["secret"] == VALID_SECRET
    response = gw.api.get(f"/v1/endpoints/{body['id']}/secret")
    assert response.status_code == 200, response.text
    assert response.json()["secret"] == VALID_SECRET


def test_get_hides_the_secret_and_secret_route_shows_it(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = make_endpoint(gw, receiver.url(path), tenant_id="t1")
    response = gw.api.get(f"/v1/endpoints/{created['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "secret" not in body
    assert "previous_secret" not in body
    assert created["secret"] not in response.text
    assert set(body) >= ENDPOINT_FIELDS
    assert {k: v for k, v in created.items() if k != "secret"} == {
        k: body[k] for k in created if k != "secret"
    }

    secret = gw.api.get(f"/v1/endpoints/{created['id']}/secret")
    assert secret.status_code == 200, secret.text
    assert secret.json()["secret"] == created["secret"]
    assert secret.json().get("previous_secret_expires_at") is None


def test_list_never_shows_secrets(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.get("/v1/endpoints")
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    assert item["id"] == created["id"]
    assert "secret" not in item
    assert created["secret"] not in response.text


# list


def test_list_is_newest_first_and_paginates(gw: Gateway, receiver: Receiver, path: str) -> None:
    ids = [make_endpoint(gw, receiver.url(f"{path}/{i}"))["id"] for i in range(5)]

    full = gw.api.get("/v1/endpoints")
    assert full.status_code == 200, full.text
    assert [e["id"] for e in full.json()["data"]] == ids[::-1]
    assert full.json()["next_cursor"] is None

    seen: list[str] = []
    pages: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = gw.api.get("/v1/endpoints", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(len(page["data"]))
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert seen == ids[::-1]


def test_list_exact_page_has_null_cursor_at_the_end(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    ids = [make_endpoint(gw, receiver.url(f"{path}/{i}"))["id"] for i in range(4)]
    first = gw.api.get("/v1/endpoints", params={"limit": 2}).json()
    assert first["next_cursor"] is not None
    second = gw.api.get("/v1/endpoints", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [e["id"] for e in first["data"] + second["data"]] == ids[::-1]
    if second["next_cursor"] is not None:
        # A cursor may be handed out for the full last page, but it must lead to nothing.
        third = gw.api.get(
            "/v1/endpoints", params={"limit": 2, "cursor": second["next_cursor"]}
        ).json()
        assert third == {"data": [], "next_cursor": None}


def test_list_filters_by_tenant(gw: Gateway, receiver: Receiver, path: str) -> None:
    t1a = make_endpoint(gw, receiver.url(f"{path}/a"), tenant_id="t1")
    make_endpoint(gw, receiver.url(f"{path}/b"), tenant_id="t2")
    t1c = make_endpoint(gw, receiver.url(f"{path}/c"), tenant_id="t1")
    make_endpoint(gw, receiver.url(f"{path}/d"))

    response = gw.api.get("/v1/endpoints", params={"tenant_id": "t1"})
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["data"]] == [t1c["id"], t1a["id"]]
    assert all(e["tenant_id"] == "t1" for e in response.json()["data"])

    nobody = gw.api.get("/v1/endpoints", params={"tenant_id": "t9"})
    assert nobody.json() == {"data": [], "next_cursor": None}

    everything = gw.api.get("/v1/endpoints")
    assert len(everything.json()["data"]) == 4


def test_list_when_empty(gw: Gateway) -> None:
    response = gw.api.get("/v1/endpoints")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("limit", ["0", "251", "-1", "abc"])
def test_list_rejects_bad_limit(gw: Gateway, limit: str) -> None:
    response = gw.api.get("/v1/endpoints", params={"limit": limit})
    assert_422_naming(response, "limit")


@pytest.mark.parametrize("cursor", ["garbage", "ep_", "zzzz", "0"])
def test_list_with_a_foreign_cursor_does_not_fail(
    gw: Gateway, receiver: Receiver, path: str, cursor: str
) -> None:
    make_endpoint(gw, receiver.url(path))
    response = gw.api.get("/v1/endpoints", params={"cursor": cursor})
    assert response.status_code in (200, 422), response.text


def test_list_accepts_limit_bounds(gw: Gateway, receiver: Receiver, path: str) -> None:
    make_endpoint(gw, receiver.url(path))
    for limit in (1, 250):
        response = gw.api.get("/v1/endpoints", params={"limit": limit})
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 1


# update, delete


def test_patch_changes_fields(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(
        gw,
        receiver.url(f"{path}/old"),
        event_types=["a.b"],
        description="before",
        headers={"X-A": "1"},
    )
    response = gw.api.patch(
        f"/v1/endpoints/{created['id']}",
        json={
            "url": receiver.url(f"{path}/new"),
            "event_types": ["invoice.*"],
            "disabled": True,
            "description": "after",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "secret" not in body
    assert body["url"] == receiver.url(f"{path}/new")
    assert body["event_types"] == ["invoice.*"]
    assert body["disabled"] is True
    assert body["description"] == "after"
    # Fields not sent are left alone.
    assert body["headers"] == {"X-A": "1"}
    assert body["created_at"] == created["created_at"]
    assert parse_time(body["updated_at"]) >= parse_time(created["updated_at"])

    again = gw.api.get(f"/v1/endpoints/{created['id']}").json()
    assert again == body
    # The secret is not changed by an update.
    secret = gw.api.get(f"/v1/endpoints/{created['id']}/secret").json()["secret"]
    assert secret == created["secret"]


def test_patch_can_clear_nullable_fields_and_reenable(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = make_endpoint(
        gw, receiver.url(path), event_types=["a.b"], description="x", disabled=True, rate_limit=5
    )
    response = gw.api.patch(
        f"/v1/endpoints/{created['id']}",
        json={
            "event_types": None,
            "description": None,
            "disabled": False,
            "rate_limit": None,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event_types"] is None
    assert body["description"] is None
    assert body["disabled"] is False
    assert body["rate_limit"] is None


def test_patch_empty_body_changes_nothing(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(gw, receiver.url(path), description="same")
    response = gw.api.patch(f"/v1/endpoints/{created['id']}", json={})
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "same"
    assert response.json()["url"] == created["url"]


def test_patch_rejects_null_url(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.patch(f"/v1/endpoints/{created['id']}", json={"url": None})
    assert_422_naming(response, "url")
    assert gw.api.get(f"/v1/endpoints/{created['id']}").json()["url"] == receiver.url(path)


@pytest.mark.parametrize(
    "change",
    [
        {"url": "ftp://127.0.0.1/x"},
        {"url": "http://10.0.0.1/hook"},
        {"url": "http://169.254.169.254/latest/meta-data"},
        {"event_types": ["bad type!"]},
        {"headers": {"Content-Type": "text/plain"}},
        {"rate_limit": 0},
        {"disabled": None},
        {"unknown_field": 1},
    ],
    ids=[
        "ftp",
        "private",
        "metadata",
        "filter",
        "reserved-header",
        "rate-limit",
        "null-disabled",
        "extra",
    ],
)
def test_patch_validates_like_create(
    gw: Gateway, receiver: Receiver, path: str, change: dict[str, Any]
) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.patch(f"/v1/endpoints/{created['id']}", json=change)
    [field] = change
    assert_422_naming(response, field)
    after = gw.api.get(f"/v1/endpoints/{created['id']}").json()
    assert after == {k: v for k, v in created.items() if k != "secret"}


def test_delete_then_get_is_404(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.delete(f"/v1/endpoints/{created['id']}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert gw.api.get(f"/v1/endpoints/{created['id']}").status_code == 404
    assert gw.api.get(f"/v1/endpoints/{created['id']}/secret").status_code == 404
    assert gw.api.get("/v1/endpoints").json()["data"] == []
    assert gw.api.delete(f"/v1/endpoints/{created['id']}").status_code == 404


def test_delete_removes_its_deliveries_but_not_the_event(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    event = publish(gw, "user.created")
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    listed = gw.api.get(
        f"/v1/endpoints/{endpoint['id']}/deliveries", params={"status": "succeeded"}
    )
    assert [d["id"] for d in listed.json()["data"]] == [delivery["id"]]

    assert gw.api.delete(f"/v1/endpoints/{endpoint['id']}").status_code == 204
    assert gw.api.get(f"/v1/deliveries/{delivery['id']}").status_code == 404
    assert gw.api.get(f"/v1/events/{event['id']}").status_code == 200
    assert deliveries_of(gw, event["id"]) == []
    # The attempt log went too (on PostgreSQL no foreign key takes it along).
    assert gw.sql(f"SELECT count(*) FROM attempt WHERE delivery_id = '{delivery['id']}'") == [(0,)]


def test_endpoint_deliveries_rejects_unknown_status(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    response = gw.api.get(f"/v1/endpoints/{endpoint['id']}/deliveries", params={"status": "lost"})
    assert_422_naming(response, "status")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"description": "x"}),
        ("DELETE", "", None),
        ("GET", "/secret", None),
        ("POST", "/secret/rotate", None),
        ("POST", "/test", None),
        ("POST", "/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("GET", "/deliveries", None),
    ],
    ids=["get", "patch", "delete", "secret", "rotate", "test", "recover", "deliveries"],
)
def test_unknown_endpoint_is_404(
    gw: Gateway, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = gw.api.request(method, f"/v1/endpoints/{UNKNOWN_ENDPOINT}{suffix}", json=body)
    assert response.status_code == 404, response.text
    assert isinstance(response.json()["detail"], str)


# validation


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://127.0.0.1/hook"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "http:///path-only"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": ""}, "url"),
        ({"url": "http://10.0.0.1/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "http://192.168.1.1/hook"}, "url"),
        ({"url": "http://[::ffff:10.0.0.1]/hook"}, "url"),
        ({"url": "http://167772161/hook"}, "url"),
        ({"url": "http://0.0.0.0/hook"}, "url"),
        ({"url": "http://[fd00::1]/hook"}, "url"),
        ({"url": "http://127.0.0.1:99999/hook"}, "url"),
        ({"url": "http://127.0.0.1/" + "a" * 2100}, "url"),
        ({"secret": "sk_" + base64.b64encode(bytes(32)).decode()}, "secret"),
        ({"secret": "whsec_" + base64.b64encode(bytes(8)).decode()}, "secret"),
        ({"secret": "whsec_" + base64.b64encode(bytes(65)).decode()}, "secret"),
        ({"secret": "whsec_not base64!!"}, "secret"),
        ({"event_types": ["bad type!"]}, "event_types"),
        ({"event_types": ["a.*.b"]}, "event_types"),
        ({"event_types": "invoice.paid"}, "event_types"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "headers"),
        ({"headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"headers": {"X-Ok": "line\nInjected: yes"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -3}, "rate_limit"),
        ({"rate_limit": 1.5}, "rate_limit"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"disabled": "sometimes"}, "disabled"),
        ({"unknown_field": True}, "unknown_field"),
    ],
    ids=[
        "ftp-scheme",
        "no-host",
        "no-host-path",
        "not-a-url",
        "empty-url",
        "private-10",
        "metadata-169.254",
        "private-192.168",
        "ipv4-mapped-private",
        "decimal-ip-10.0.0.1",
        "unspecified",
        "ipv6-ula",
        "bad-port",
        "too-long",
        "secret-prefix",
        "secret-too-short",
        "secret-too-long",
        "secret-not-base64",
        "filter-space",
        "filter-inner-wildcard",
        "filter-not-list",
        "reserved-signature-header",
        "reserved-content-type",
        "header-newline",
        "header-bad-name",
        "rate-limit-0",
        "rate-limit-negative",
        "rate-limit-float",
        "empty-tenant",
        "disabled-not-bool",
        "extra-field",
    ],
)
def test_create_rejects_invalid_fields(
    gw: Gateway, receiver: Receiver, path: str, fields: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"url": receiver.url(path), **fields}
    response = gw.api.post("/v1/endpoints", json=body)
    assert_422_naming(response, field)
    assert gw.api.get("/v1/endpoints").json()["data"] == []


def test_create_rejects_missing_url(gw: Gateway) -> None:
    response = gw.api.post("/v1/endpoints", json={"description": "no url"})
    assert_422_naming(response, "url")


def test_create_rejects_malformed_json(gw: Gateway) -> None:
    response = gw.api.post(
        "/v1/endpoints", content=b'{"url": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_create_accepts_allowed_loopback_and_valid_filters(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    body = make_endpoint(
        gw,
        receiver.url(path),
        event_types=["*", "invoice.*", "user.created", "a_b-c.d"],
        headers={"X-Custom": "v", "Authorization": "Bearer downstream"},
    )
    assert body["event_types"] == ["*", "invoice.*", "user.created", "a_b-c.d"]
    assert body["headers"] == {"X-Custom": "v", "Authorization": "Bearer downstream"}


def test_validation_error_does_not_echo_the_secret(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    secret = "whsec_" + base64.b64encode(b"short-but-secret").decode()
    response = gw.api.post("/v1/endpoints", json={"url": receiver.url(path), "secret": secret})
    assert_422_naming(response, "secret")
    assert secret not in response.text


# secret rotation


def test_rotate_secret_returns_a_new_one_with_24h_overlap(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.post(f"/v1/endpoints/{created['id']}/secret/rotate")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    expires = parse_time(body["previous_secret_expires_at"])
    expected = datetime.now(UTC) + timedelta(hours=24)
    assert abs(expires - expected) < timedelta(minutes=5)

    after = gw.api.get(f"/v1/endpoints/{created['id']}/secret")
    assert after.status_code == 200, after.text
    assert after.json()["secret"] == body["secret"]
    assert parse_time(after.json()["previous_secret_expires_at"]) == expires
    # The endpoint itself still hides both secrets.
    shown = gw.api.get(f"/v1/endpoints/{created['id']}")
    assert body["secret"] not in shown.text
    assert created["secret"] not in shown.text


def test_rotate_secret_to_a_given_secret(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.post(
        f"/v1/endpoints/{created['id']}/secret/rotate", json={"secret": VALID_SECRET}
    )
    assert response.status_code == 200, response.text
    assert response.json()["secret"] == VALID_SECRET
    assert gw.api.get(f"/v1/endpoints/{created['id']}/secret").json()["secret"] == VALID_SECRET


def test_rotate_secret_rejects_an_invalid_secret(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = make_endpoint(gw, receiver.url(path))
    response = gw.api.post(
        f"/v1/endpoints/{created['id']}/secret/rotate", json={"secret": "not-a-whsec"}
    )
    assert_422_naming(response, "secret")
    assert gw.api.get(f"/v1/endpoints/{created['id']}/secret").json() == {
        "secret": created["secret"],
        "previous_secret_expires_at": None,
    }


# auth and the open routes


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "wrong-key"},
    ],
    ids=["missing", "wrong-key", "empty-bearer", "basic", "no-scheme"],
)
def test_management_routes_need_a_valid_key(gw: Gateway, headers: dict[str, str]) -> None:
    with anonymous_client(gw) as client:
        for method, url in [
            ("GET", "/v1/endpoints"),
            ("POST", "/v1/endpoints"),
            ("GET", "/v1/events"),
            ("POST", "/v1/events"),
            ("GET", f"/v1/endpoints/{UNKNOWN_ENDPOINT}/secret"),
        ]:
            response = client.request(
                method, url, headers=headers, json={"url": "http://127.0.0.1:1/x"}
            )
            assert response.status_code == 401, (method, url, response.text)
            assert isinstance(response.json()["detail"], str)
    assert gw.api.get("/v1/endpoints").json()["data"] == []


def test_basic_auth_with_the_real_key_is_refused(gw: Gateway) -> None:
    key = gw.api.headers["Authorization"].removeprefix("Bearer ")
    with anonymous_client(gw) as client:
        basic = base64.b64encode(f"{key}:".encode()).decode()
        response = client.get("/v1/endpoints", headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 401, response.text
        # The scheme name is case-insensitive (RFC 7235).
        response = client.get("/v1/endpoints", headers={"Authorization": f"bearer {key}"})
        assert response.status_code == 200, response.text


def test_health_routes_need_no_key(gw: Gateway) -> None:
    with anonymous_client(gw) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text

        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks, ready.text
        assert all(value == "ok" for value in checks.values()), ready.text


def test_openapi_and_docs_need_no_key(gw: Gateway) -> None:
    with anonymous_client(gw) as client:
        spec = client.get("/openapi.json")
        assert spec.status_code == 200, spec.text
        paths = spec.json()["paths"]
        for route in (
            "/v1/endpoints",
            "/v1/endpoints/{endpoint_id}",
            "/v1/events",
            "/v1/events/{event_id}",
            "/v1/deliveries/{delivery_id}",
        ):
            assert route in paths, route

        docs = client.get("/docs")
        assert docs.status_code == 200, docs.text
        assert "text/html" in docs.headers["content-type"]


def test_metrics_serve_prometheus_text(gw: Gateway) -> None:
    with anonymous_client(gw) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "# HELP" in response.text
    assert "# TYPE" in response.text


# odd input: refused at save time, never a 500


def _settled(gw: Gateway, delivery_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = gw.api.get(f"/v1/deliveries/{delivery_id}").json()
        return body if body["status"] != "pending" else None

    return wait_until(check, 15, f"delivery {delivery_id} to settle")  # type: ignore[no-any-return]


def _refused_or_delivered(
    gw: Gateway, receiver: Receiver, path: str, response: httpx.Response, field: str
) -> None:
    """A value is either refused when saved, or every delivery can actually use it."""
    if response.status_code == 422:
        assert any(field in loc for loc in error_locations(response)), response.text
        return
    assert response.status_code == 201, response.text
    event = publish(gw, "user.created")
    [delivery] = deliveries_of(gw, event["id"])
    detail = _settled(gw, delivery["id"])
    assert detail["status"] == "succeeded", detail["attempts"]
    assert receiver.received(path), "the endpoint got nothing"


@pytest.mark.parametrize(
    "value", ["a\u0001b", "a\x7fb", "caf\u00e9"], ids=["control-char", "del", "non-ascii"]
)
def test_header_value_is_refused_or_deliverable(
    gw: Gateway, receiver: Receiver, path: str, value: str
) -> None:
    response = gw.api.post(
        "/v1/endpoints", json={"url": receiver.url(path), "headers": {"X-Custom": value}}
    )
    _refused_or_delivered(gw, receiver, path, response, "headers")


def test_url_with_credentials_is_refused_or_deliverable(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    url = receiver.url(path).replace("http://", "http://user:pass@")
    response = gw.api.post("/v1/endpoints", json={"url": url})
    _refused_or_delivered(gw, receiver, path, response, "url")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1 /hook",
        "http://127.0.0.1:0/hook",
        "http://127.0.0.1:1/hook\u0000",
    ],
    ids=["space-in-host", "port-0", "nul"],
)
def test_create_rejects_undeliverable_url(gw: Gateway, url: str) -> None:
    with oneshot_client(gw) as client:
        assert_422_naming(client.post("/v1/endpoints", json={"url": url}), "url")
        assert client.get("/v1/endpoints").json()["data"] == []


@pytest.mark.parametrize(
    "fields",
    [
        '"description": "\\ud800"',
        '"tenant_id": "\\udfff"',
        '"headers": {"X-A": "\\ud800"}',
    ],
    ids=["description", "tenant_id", "header"],
)
def test_lone_surrogate_is_422(gw: Gateway, receiver: Receiver, path: str, fields: str) -> None:
    with oneshot_client(gw) as client:
        response = post_raw(client, "/v1/endpoints", f'{{"url": "{receiver.url(path)}", {fields}}}')
        assert response.status_code == 422, response.text
        assert client.get("/v1/endpoints").json()["data"] == []


@pytest.mark.parametrize("field", ["description", "tenant_id"])
def test_nul_character_in_a_field_is_stored_or_refused(
    request: pytest.FixtureRequest, gw: Gateway, receiver: Receiver, path: str, field: str
) -> None:
    with oneshot_client(gw) as client:
        response = client.post("/v1/endpoints", json={"url": receiver.url(path), field: "a\u0000b"})
        assert response.status_code in (201, 422), response.text
        if response.status_code == 201:
            shown = client.get(f"/v1/endpoints/{response.json()['id']}").json()
            assert shown[field] == "a\u0000b"


@pytest.mark.parametrize(
    "url",
    [
        "/v1/endpoints/%00",
        "/v1/endpoints/%00/secret",
        "/v1/endpoints?tenant_id=%00",
        "/v1/endpoints?cursor=%00",
    ],
    ids=["get", "secret", "tenant-filter", "cursor"],
)
def test_nul_character_in_the_request_line_is_not_a_500(
    request: pytest.FixtureRequest, gw: Gateway, url: str
) -> None:
    with oneshot_client(gw) as client:
        response = client.get(url)
    expected = (404,) if "?" not in url else (200, 422)
    assert response.status_code in expected, response.text
