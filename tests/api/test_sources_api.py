"""The sources management contract (the OpenAPI document's sources routes), and the inbound URL's
limits and states: unknown, disabled, too large, wrong method, malformed signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.gateway import API_KEY, Gateway
from tests.support.helpers import anonymous_client, assert_422_naming, parse_time

UNKNOWN_SOURCE = "src_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-source-secret-0123456789").decode()
MAX_BODY = 1024 * 1024
SEVEN_DAYS = 7 * 24 * 3600
SOURCE_FIELDS = {
    "id",
    "name",
    "provider",
    "options",
    "tolerance_seconds",
    "disabled",
    "ingest_path",
    "created_at",
}
HMAC_OPTIONS = {
    "header": "X-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "sig=",
    "id_header": "X-Delivery",
    "type_field": "kind",
}
# A secret per provider, distinctive enough to be found if a response ever leaks it.
SECRETS = {
    "stripe": "whsec_stripe_secret_do_not_leak_1",
    "github": "github-secret-do-not-leak-2",
    "gitlab": "gitlab-token-do-not-leak-3",
    "shopify": "shopify-secret-do-not-leak-4",
    "slack": "slack-signing-secret-do-not-leak-5",
    "standard": STANDARD_SECRET,
    "hmac": "hmac-secret-do-not-leak-6",
}


# helpers


def _create(gw: Gateway, provider: str = "github", **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"{provider} source",
        "provider": provider,
        "secret": SECRETS[provider],
        **fields,
    }
    if provider == "hmac" and "options" not in fields:
        body["options"] = {"header": "X-Signature"}
    response = gw.api.post("/v1/sources", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _github_headers(secret: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": f"sha256={signature}",
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return headers


def _signed_headers(provider: str, secret: str, body: bytes) -> dict[str, str]:
    """Headers that make `body` verify for a source of `provider` with `secret`."""
    now = str(int(time.time()))
    if provider == "stripe":
        sig = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={now},v1={sig}"}
    if provider == "github":
        return _github_headers(secret, body)
    if provider == "gitlab":
        return {"X-Gitlab-Token": secret, "X-Gitlab-Event": "Push Hook"}
    if provider == "shopify":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return {
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Topic": "orders/create",
        }
    if provider == "slack":
        mac = hmac.new(secret.encode(), f"v0:{now}:".encode() + body, hashlib.sha256)
        return {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": f"v0={mac.hexdigest()}"}
    if provider == "standard":
        key = base64.b64decode(secret.removeprefix("whsec_"))
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:16]
        digest = hmac.new(key, f"{msg_id}.{now}.".encode() + body, hashlib.sha256).digest()
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": now,
            "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
        }
    assert provider == "hmac"
    return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def _event_count(gw: Gateway) -> int:
    return int(gw.sql("SELECT count(*) FROM event")[0][0])  # type: ignore[call-overload]


def _source_count(gw: Gateway) -> int:
    return int(gw.sql("SELECT count(*) FROM source")[0][0])  # type: ignore[call-overload]


# create


def test_create_returns_every_field_and_the_secret(gw: Gateway) -> None:
    before = datetime.now(UTC)
    response = gw.api.post(
        "/v1/sources",
        json={
            "name": "GitHub org hooks",
            "provider": "github",
            "secret": SECRETS["github"],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= SOURCE_FIELDS | {"secret"}
    assert body["id"].startswith("src_")
    assert body["name"] == "GitHub org hooks"
    assert body["provider"] == "github"
    assert body["options"] == {}
    assert body["tolerance_seconds"] == 300
    assert body["disabled"] is False
    assert body["ingest_path"] == f"/in/{body['id']}"
    assert body["secret"] == SECRETS["github"]
    created = parse_time(body["created_at"])
    assert before - timedelta(minutes=1) < created < datetime.now(UTC) + timedelta(minutes=1)
    assert gw.sql(f"SELECT provider FROM source WHERE id = '{body['id']}'") == [("github",)]


@pytest.mark.parametrize("provider", sorted(SECRETS))
def test_every_provider_can_be_created_and_accepts_a_signed_request(
    gw: Gateway, provider: str
) -> None:
    source = _create(gw, provider)
    assert source["provider"] == provider
    body = json.dumps(
        {
            "id": f"evt_{provider}",
            "type": "thing.happened",
            "event_id": f"Ev{provider}",
            "object_kind": "push",
        }
    ).encode()
    with anonymous_client(gw) as client:
        response = client.post(
            source["ingest_path"],
            content=body,
            headers=_signed_headers(provider, SECRETS[provider], body),
        )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["event_id"].startswith("evt_")


def test_create_keeps_tolerance_disabled_and_normalises_hmac_options(gw: Gateway) -> None:
    source = _create(
        gw, "hmac", options={"header": "X-Sig"}, tolerance_seconds=SEVEN_DAYS, disabled=True
    )
    assert source["tolerance_seconds"] == SEVEN_DAYS
    assert source["disabled"] is True
    assert source["options"]["header"] == "X-Sig"
    assert source["options"]["algorithm"] == "sha256"
    assert source["options"]["encoding"] == "hex"
    assert source["options"].get("prefix") in ("", None)

    full = _create(gw, "hmac", options=HMAC_OPTIONS, tolerance_seconds=1)
    assert full["tolerance_seconds"] == 1
    assert {k: full["options"][k] for k in HMAC_OPTIONS} == HMAC_OPTIONS


BAD_CREATES: list[Any] = [
    pytest.param({"provider": "paypal"}, "provider", id="unknown-provider"),
    pytest.param({"secret": None}, "secret", id="missing-secret"),
    pytest.param({"name": ""}, "name", id="empty-name"),
    pytest.param({"name": None}, "name", id="missing-name"),
    pytest.param({"tolerance_seconds": 0}, "tolerance_seconds", id="tolerance-0"),
    pytest.param({"tolerance_seconds": -5}, "tolerance_seconds", id="tolerance-negative"),
    pytest.param(
        {"tolerance_seconds": SEVEN_DAYS + 1}, "tolerance_seconds", id="tolerance-over-7-days"
    ),
    pytest.param({"provider": "hmac", "options": None}, "options", id="hmac-without-options"),
    pytest.param(
        {"provider": "hmac", "options": {"algorithm": "sha256"}},
        "options",
        id="hmac-without-header",
    ),
    pytest.param(
        {"provider": "hmac", "options": {"header": "X-Sig", "algorithm": "md5"}},
        "options",
        id="hmac-md5",
    ),
    pytest.param(
        {"provider": "hmac", "options": {"header": "X-Sig", "encoding": "hex2"}},
        "options",
        id="hmac-hex2",
    ),
    pytest.param(
        {"provider": "hmac", "options": {"header": "X-Sig", "colour": "red"}},
        "options",
        id="hmac-unknown-option",
    ),
    pytest.param({"options": {"header": "X-Sig"}}, "options", id="options-on-github"),
    pytest.param(
        {"provider": "standard", "secret": "not base64 at all!"},
        "secret",
        id="standard-secret-not-base64",
    ),
    pytest.param({"colour": "red"}, "colour", id="extra-field"),
]


def _bad_create(gw: Gateway, changes: dict[str, Any]) -> httpx.Response:
    body: dict[str, Any] = {"name": "src", "provider": "github", "secret": "s3cret"}
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return gw.api.post("/v1/sources", json=body)


@pytest.mark.parametrize(("changes", "field"), BAD_CREATES)
def test_create_rejects_invalid_body_with_422(
    gw: Gateway, changes: dict[str, Any], field: str
) -> None:
    response = _bad_create(gw, changes)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list), response.text
    assert _source_count(gw) == 0


@pytest.mark.parametrize(("changes", "field"), BAD_CREATES)
def test_create_422_names_the_field_in_loc(
    gw: Gateway, changes: dict[str, Any], field: str
) -> None:
    assert_422_naming(_bad_create(gw, changes), field)


def test_create_rejects_malformed_json(gw: Gateway) -> None:
    response = gw.api.post(
        "/v1/sources", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


def test_validation_error_does_not_echo_the_secret(gw: Gateway) -> None:
    secret = "not-base64-but-very-secret-value!!"
    response = gw.api.post(
        "/v1/sources", json={"name": "s", "provider": "standard", "secret": secret}
    )
    assert response.status_code == 422, response.text
    assert secret not in response.text
    response = gw.api.post("/v1/sources", json={"name": "", "provider": "github", "secret": secret})
    assert response.status_code == 422, response.text
    assert secret not in response.text


# read


def test_get_hides_the_secret_and_secret_route_shows_it(gw: Gateway) -> None:
    created = _create(gw, "stripe")
    response = gw.api.get(f"/v1/sources/{created['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "secret" not in body
    assert SECRETS["stripe"] not in response.text
    expected = {k: v for k, v in created.items() if k != "secret"}
    assert {k: body[k] for k in expected} == expected

    secret = gw.api.get(f"/v1/sources/{created['id']}/secret")
    assert secret.status_code == 200, secret.text
    assert secret.json()["secret"] == SECRETS["stripe"]


def test_list_is_newest_first_paginates_and_never_shows_secrets(gw: Gateway) -> None:
    created = [_create(gw, provider)["id"] for provider in sorted(SECRETS)]
    newest_first = created[::-1]

    everything = gw.api.get("/v1/sources")
    assert everything.status_code == 200, everything.text
    assert [s["id"] for s in everything.json()["data"]] == newest_first
    assert everything.json()["next_cursor"] is None
    for item in everything.json()["data"]:
        assert "secret" not in item
        assert item["ingest_path"] == f"/in/{item['id']}"
    for secret in SECRETS.values():
        assert secret not in everything.text

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = gw.api.get("/v1/sources", params=params)
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        assert len(data) <= 3
        assert all("secret" not in item for item in data)
        seen += [item["id"] for item in data]
        cursor = page.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert pages < 10
    assert seen == newest_first
    assert pages == 3  # 3 + 3 + 1


def test_list_exact_page_ends_with_null_cursor(gw: Gateway) -> None:
    created = [_create(gw)["id"] for _ in range(2)]
    first = gw.api.get("/v1/sources", params={"limit": 2}).json()
    assert [s["id"] for s in first["data"]] == created[::-1]
    assert first["next_cursor"] is None


def test_list_when_empty(gw: Gateway) -> None:
    response = gw.api.get("/v1/sources")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("limit", ["0", "-1", "251", "many"])
def test_list_rejects_bad_limit(gw: Gateway, limit: str) -> None:
    assert_422_naming(gw.api.get("/v1/sources", params={"limit": limit}), "limit")


def test_list_accepts_limit_bounds(gw: Gateway) -> None:
    _create(gw)
    for limit in ("1", "250"):
        response = gw.api.get("/v1/sources", params={"limit": limit})
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 1


# update


def test_patch_changes_fields_and_keeps_the_rest(gw: Gateway) -> None:
    created = _create(gw, "github")
    response = gw.api.patch(
        f"/v1/sources/{created['id']}",
        json={
            "name": "renamed",
            "tolerance_seconds": 60,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "secret" not in body
    assert body["name"] == "renamed"
    assert body["tolerance_seconds"] == 60
    assert body["provider"] == "github"
    assert body["disabled"] is False
    assert body["options"] == {}
    assert body["ingest_path"] == created["ingest_path"]
    assert body["created_at"] == created["created_at"]
    assert parse_time(body["updated_at"]) >= parse_time(created["created_at"])
    again = gw.api.get(f"/v1/sources/{created['id']}").json()
    assert {k: again[k] for k in ("name", "tolerance_seconds")} == {
        "name": "renamed",
        "tolerance_seconds": 60,
    }

    # An empty PATCH changes nothing.
    same = gw.api.patch(f"/v1/sources/{created['id']}", json={})
    assert same.status_code == 200, same.text
    assert same.json()["name"] == "renamed"


def test_patch_secret_changes_what_verifies(gw: Gateway) -> None:
    source = _create(gw, "github")
    new_secret = "a-brand-new-github-secret"
    response = gw.api.patch(f"/v1/sources/{source['id']}", json={"secret": new_secret})
    assert response.status_code == 200, response.text
    assert "secret" not in response.json()
    assert new_secret not in response.text
    assert gw.api.get(f"/v1/sources/{source['id']}/secret").json()["secret"] == new_secret

    body = b'{"action": "opened"}'
    with anonymous_client(gw) as client:
        old = client.post(
            source["ingest_path"], content=body, headers=_github_headers(SECRETS["github"], body)
        )
        assert old.status_code == 401, old.text
        assert _event_count(gw) == 0
        new = client.post(
            source["ingest_path"], content=body, headers=_github_headers(new_secret, body)
        )
        assert new.status_code == 200, new.text
        assert new.json()["status"] == "accepted"


def test_patch_secret_is_validated_against_the_provider(gw: Gateway) -> None:
    source = _create(gw, "standard")
    bad = gw.api.patch(f"/v1/sources/{source['id']}", json={"secret": "not base64!!"})
    assert_422_naming(bad, "secret")
    assert "not base64!!" not in bad.text
    assert gw.api.get(f"/v1/sources/{source['id']}/secret").json()["secret"] == STANDARD_SECRET
    new_secret = "whsec_" + base64.b64encode(b"another-standard-secret-9876543210").decode()
    good = gw.api.patch(f"/v1/sources/{source['id']}", json={"secret": new_secret})
    assert good.status_code == 200, good.text
    assert gw.api.get(f"/v1/sources/{source['id']}/secret").json()["secret"] == new_secret


def test_patch_hmac_options(gw: Gateway) -> None:
    source = _create(gw, "hmac")
    response = gw.api.patch(f"/v1/sources/{source['id']}", json={"options": HMAC_OPTIONS})
    assert response.status_code == 200, response.text
    options = response.json()["options"]
    assert {k: options[k] for k in HMAC_OPTIONS} == HMAC_OPTIONS
    stored = gw.api.get(f"/v1/sources/{source['id']}").json()["options"]
    assert {k: stored[k] for k in HMAC_OPTIONS} == HMAC_OPTIONS

    # The new options are what verification uses: sha512, base64, prefix, id header.
    body = b'{"kind": "order.paid"}'
    digest = hmac.new(SECRETS["hmac"].encode(), body, hashlib.sha512).digest()
    headers = {"X-Signature": "sig=" + base64.b64encode(digest).decode(), "X-Delivery": "d-1"}
    with anonymous_client(gw) as client:
        accepted = client.post(source["ingest_path"], content=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    event = gw.api.get(f"/v1/events/{accepted.json()['event_id']}").json()
    assert event["type"] == "order.paid"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(None, id="null"),
        pytest.param({}, id="empty"),
        pytest.param({"algorithm": "sha256"}, id="without-header"),
        pytest.param({"header": "X-Sig", "algorithm": "md5"}, id="md5"),
        pytest.param({"header": "X-Sig", "encoding": "hex2"}, id="hex2"),
        pytest.param({"header": "bad header name"}, id="bad-header-name"),
        pytest.param({"header": "X-Sig", "colour": "red"}, id="unknown-option"),
    ],
)
def test_patch_rejects_bad_hmac_options(gw: Gateway, options: dict[str, Any] | None) -> None:
    source = _create(gw, "hmac")
    response = gw.api.patch(f"/v1/sources/{source['id']}", json={"options": options})
    assert_422_naming(response, "options")
    assert gw.api.get(f"/v1/sources/{source['id']}").json()["options"] == source["options"]


@pytest.mark.parametrize("provider", ["stripe", "github", "gitlab", "shopify", "slack", "standard"])
def test_patch_rejects_options_on_a_provider_without_options(gw: Gateway, provider: str) -> None:
    source = _create(gw, provider)
    response = gw.api.patch(f"/v1/sources/{source['id']}", json={"options": {"header": "X-Sig"}})
    assert_422_naming(response, "options")
    assert gw.api.get(f"/v1/sources/{source['id']}").json()["options"] == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": None}, "name", id="null-name"),
        pytest.param({"secret": None}, "secret", id="null-secret"),
        pytest.param({"secret": ""}, "secret", id="empty-secret"),
        pytest.param({"tolerance_seconds": 0}, "tolerance_seconds", id="tolerance-0"),
        pytest.param({"tolerance_seconds": -1}, "tolerance_seconds", id="tolerance-negative"),
        pytest.param(
            {"tolerance_seconds": SEVEN_DAYS + 1}, "tolerance_seconds", id="tolerance-over-7-days"
        ),
        pytest.param({"tolerance_seconds": None}, "tolerance_seconds", id="tolerance-null"),
        pytest.param({"disabled": None}, "disabled", id="disabled-null"),
        pytest.param({"disabled": "maybe"}, "disabled", id="disabled-not-bool"),
        pytest.param({"provider": "stripe"}, "provider", id="provider-is-fixed"),
        pytest.param({"colour": "red"}, "colour", id="extra-field"),
    ],
)
def test_patch_rejects_invalid_fields(gw: Gateway, changes: dict[str, Any], field: str) -> None:
    source = _create(gw, "github")
    response = gw.api.patch(f"/v1/sources/{source['id']}", json=changes)
    assert_422_naming(response, field)
    after = gw.api.get(f"/v1/sources/{source['id']}").json()
    assert {k: after[k] for k in SOURCE_FIELDS} == {k: source[k] for k in SOURCE_FIELDS}
    assert gw.api.get(f"/v1/sources/{source['id']}/secret").json()["secret"] == SECRETS["github"]


# delete


def test_delete_then_get_and_ingest_are_404(gw: Gateway) -> None:
    source = _create(gw, "github")
    kept = _create(gw, "stripe")
    body = b'{"zen": "keep it simple"}'
    with anonymous_client(gw) as client:
        first = client.post(
            source["ingest_path"], content=body, headers=_github_headers(SECRETS["github"], body)
        )
        assert first.status_code == 200, first.text

        deleted = gw.api.delete(f"/v1/sources/{source['id']}")
        assert deleted.status_code == 204, deleted.text
        assert deleted.content == b""
        assert gw.api.get(f"/v1/sources/{source['id']}").status_code == 404
        assert gw.api.get(f"/v1/sources/{source['id']}/secret").status_code == 404
        assert gw.api.delete(f"/v1/sources/{source['id']}").status_code == 404
        assert [s["id"] for s in gw.api.get("/v1/sources").json()["data"]] == [kept["id"]]

        body2 = b'{"zen": "after delete"}'
        after = client.post(
            source["ingest_path"], content=body2, headers=_github_headers(SECRETS["github"], body2)
        )
        assert after.status_code == 404, after.text
    # Events it received stay.
    assert _event_count(gw) == 1
    assert gw.api.get(f"/v1/events/{first.json()['event_id']}").status_code == 200


@pytest.mark.parametrize("source_id", [UNKNOWN_SOURCE, "nope", "src_" + "x" * 60])
def test_unknown_source_is_404_on_every_route(gw: Gateway, source_id: str) -> None:
    _create(gw)
    assert gw.api.get(f"/v1/sources/{source_id}").status_code == 404
    assert gw.api.get(f"/v1/sources/{source_id}/secret").status_code == 404
    patched = gw.api.patch(f"/v1/sources/{source_id}", json={"name": "x"})
    assert patched.status_code == 404, patched.text
    assert gw.api.delete(f"/v1/sources/{source_id}").status_code == 404
    body = b"{}"
    with anonymous_client(gw) as client:
        inbound = client.post(
            f"/in/{source_id}", content=body, headers=_github_headers(SECRETS["github"], body)
        )
    assert inbound.status_code == 404, inbound.text
    assert isinstance(inbound.json()["detail"], str)
    assert _event_count(gw) == 0
    assert _source_count(gw) == 1


# auth


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong-key"}, id="wrong"),
        pytest.param({"Authorization": f"Basic {API_KEY}"}, id="basic-scheme"),
    ],
)
def test_management_routes_need_a_valid_key(gw: Gateway, headers: dict[str, str]) -> None:
    source = _create(gw, "github")
    sid = source["id"]
    with httpx.Client(base_url=gw.api.base_url, timeout=30, headers=headers) as client:
        requests = [
            client.post("/v1/sources", json={"name": "x", "provider": "github", "secret": "s"}),
            client.post("/v1/sources", json={"bogus": True}),
            client.get("/v1/sources"),
            client.get(f"/v1/sources/{sid}"),
            client.get(f"/v1/sources/{sid}/secret"),
            client.patch(f"/v1/sources/{sid}", json={"name": "hijacked"}),
            client.delete(f"/v1/sources/{sid}"),
            client.get(f"/v1/sources/{UNKNOWN_SOURCE}"),
        ]
    for response in requests:
        assert response.status_code == 401, (response.request.url, response.text)
        assert SECRETS["github"] not in response.text
    assert _source_count(gw) == 1
    assert gw.api.get(f"/v1/sources/{sid}").json()["name"] == source["name"]


def test_inbound_needs_no_api_key(gw: Gateway) -> None:
    source = _create(gw, "github")
    body = b'{"action": "created"}'
    with anonymous_client(gw) as client:
        response = client.post(
            source["ingest_path"],
            content=body,
            headers=_github_headers(SECRETS["github"], body, "d-1"),
        )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    # A wrong API key is irrelevant too: the signature is the credential.
    with httpx.Client(
        base_url=gw.api.base_url, timeout=30, headers={"Authorization": "Bearer wrong"}
    ) as client:
        again = client.post(
            source["ingest_path"],
            content=body,
            headers=_github_headers(SECRETS["github"], body, "d-1"),
        )
    assert again.json() == {"status": "duplicate", "event_id": response.json()["event_id"]}


# inbound states and limits


def test_disabled_source_is_403_stores_nothing_and_accepts_again_when_enabled(
    gw: Gateway,
) -> None:
    source = _create(gw, "github")
    patched = gw.api.patch(f"/v1/sources/{source['id']}", json={"disabled": True})
    assert patched.status_code == 200, patched.text
    assert patched.json()["disabled"] is True
    body = b'{"action": "opened", "n": 1}'
    with anonymous_client(gw) as client:
        refused = client.post(
            source["ingest_path"], content=body, headers=_github_headers(SECRETS["github"], body)
        )
        assert refused.status_code == 403, refused.text
        assert isinstance(refused.json()["detail"], str)
        assert SECRETS["github"] not in refused.text
        assert _event_count(gw) == 0
        assert gw.api.get("/v1/events").json()["data"] == []

        enabled = gw.api.patch(f"/v1/sources/{source['id']}", json={"disabled": False})
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["disabled"] is False
        accepted = client.post(
            source["ingest_path"], content=body, headers=_github_headers(SECRETS["github"], body)
        )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert _event_count(gw) == 1


def test_source_created_disabled_is_403(gw: Gateway) -> None:
    source = _create(gw, "github", disabled=True)
    body = b"{}"
    with anonymous_client(gw) as client:
        response = client.post(
            source["ingest_path"], content=body, headers=_github_headers(SECRETS["github"], body)
        )
    assert response.status_code == 403, response.text
    assert _event_count(gw) == 0


def _big_body(size: int) -> bytes:
    # Valid JSON, so that only its size can be the reason to refuse it.
    prefix, suffix = b'{"pad": "', b'"}'
    return prefix + b"a" * (size - len(prefix) - len(suffix)) + suffix


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_body_over_1_mib_with_content_length_is_413(gw: Gateway) -> None:
    source = _create(gw, "github")
    body = _big_body(MAX_BODY + 1)
    with anonymous_client(gw) as client:
        response = client.post(
            source["ingest_path"], content=body, headers=_github_headers(SECRETS["github"], body)
        )
    assert response.request.headers["content-length"] == str(MAX_BODY + 1)
    assert response.status_code == 413, response.text
    assert isinstance(response.json()["detail"], str)
    assert _event_count(gw) == 0


def test_body_over_1_mib_sent_chunked_is_413(gw: Gateway) -> None:
    source = _create(gw, "github")
    body = _big_body(MAX_BODY + 1)
    with anonymous_client(gw) as client:
        response = client.post(
            source["ingest_path"],
            content=_chunks(body),
            headers=_github_headers(SECRETS["github"], body),
        )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413, response.text
    assert _event_count(gw) == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_of_exactly_1_mib_is_accepted(gw: Gateway, chunked: bool) -> None:
    source = _create(gw, "github")
    body = _big_body(MAX_BODY)
    with anonymous_client(gw) as client:
        response = client.post(
            source["ingest_path"],
            content=_chunks(body) if chunked else body,
            headers=_github_headers(SECRETS["github"], body),
        )
    assert response.status_code == 200, response.text
    event = gw.api.get(f"/v1/events/{response.json()['event_id']}").json()
    assert len(event["body"]) == MAX_BODY


def test_get_on_the_inbound_url_is_405(gw: Gateway) -> None:
    source = _create(gw, "github")
    with anonymous_client(gw) as client:
        response = client.get(source["ingest_path"])
        assert response.status_code == 405, response.text
        assert client.get(f"/in/{UNKNOWN_SOURCE}").status_code == 405
    assert _event_count(gw) == 0


MALFORMED = [
    pytest.param("stripe", {"Stripe-Signature": "garbage"}, "Stripe-Signature", id="stripe"),
    pytest.param("github", {"X-Hub-Signature-256": "garbage"}, "X-Hub-Signature-256", id="github"),
    pytest.param(
        "shopify", {"X-Shopify-Hmac-Sha256": "not base64!"}, "X-Shopify-Hmac-Sha256", id="shopify"
    ),
    pytest.param("slack", {"X-Slack-Signature": "garbage"}, "X-Slack-Signature", id="slack"),
    pytest.param("standard", {"webhook-signature": "garbage"}, "signature", id="standard"),
    pytest.param("hmac", {"X-Signature": "!!garbage!!"}, "signature", id="hmac"),
]


@pytest.mark.parametrize(("provider", "override", "named"), MALFORMED)
def test_malformed_signature_header_is_401_with_a_reason_and_no_secret(
    gw: Gateway, provider: str, override: dict[str, str], named: str
) -> None:
    source = _create(gw, provider)
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "event_id": "Ev1"}).encode()
    headers = _signed_headers(provider, SECRETS[provider], body)
    for name in override:  # replace the real signature header, whatever its case
        for existing in [h for h in headers if h.lower() == name.lower()]:
            del headers[existing]
    headers.update(override)
    with anonymous_client(gw) as client:
        response = client.post(source["ingest_path"], content=body, headers=headers)
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail, response.text
    assert named.lower() in detail.lower(), detail
    assert SECRETS[provider] not in response.text
    assert SECRETS[provider].removeprefix("whsec_") not in response.text
    assert _event_count(gw) == 0


@pytest.mark.parametrize("provider", sorted(SECRETS))
def test_missing_or_wrong_signature_is_401_and_stores_nothing(gw: Gateway, provider: str) -> None:
    source = _create(gw, provider)
    body = b'{"type": "invoice.paid"}'
    wrong = {
        "standard": "whsec_" + base64.b64encode(b"some-other-secret-000000000000").decode(),
    }.get(provider, "some-other-secret")
    with anonymous_client(gw) as client:
        missing = client.post(source["ingest_path"], content=body)
        assert missing.status_code == 401, missing.text
        signed_wrong = client.post(
            source["ingest_path"], content=body, headers=_signed_headers(provider, wrong, body)
        )
        assert signed_wrong.status_code == 401, signed_wrong.text
        assert SECRETS[provider] not in missing.text + signed_wrong.text
    assert _event_count(gw) == 0


@pytest.mark.parametrize("placeholder", ["whsec_...", "<signing secret>", "REPLACE-ME", "whsec_…"])
def test_a_placeholder_from_the_docs_is_not_taken_as_a_secret(
    gw: Gateway, placeholder: str
) -> None:
    body = {"name": "stripe", "provider": "stripe", "secret": placeholder}
    created = gw.api.post("/v1/sources", json=body)
    assert_422_naming(created, "secret")
    assert "placeholder" in created.text
    assert gw.api.get("/v1/sources").json()["data"] == []

    source = _create(gw, "stripe")
    patched = gw.api.patch(f"/v1/sources/{source['id']}", json={"secret": placeholder})
    assert_422_naming(patched, "secret")
