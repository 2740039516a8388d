"""The refusal log: a request to `/in/{source}` that is refused leaves no event, but the
operator can see that it came and why (`GET /v1/sources/{id}/refusals`), without its
body or signature; the log stays bounded. Both backends."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from tests.support.gateway import Gateway
from tests.support.helpers import anonymous_client, client_with, create_key
from tests.support.receiver import wait_until

SECRET = "github-hook-secret-for-refusals"
KEEP_PER_SOURCE = 100
UNKNOWN_SOURCE = "src_01ZZZZZZZZZZZZZZZZZZZZZZZZ"


def _source(gw: Gateway, **fields: Any) -> dict[str, Any]:
    body = {"name": "refusals", "provider": "github", "secret": SECRET, **fields}
    response = gw.api.post("/v1/sources", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _refusals(gw: Gateway, source_id: str, count: int, **params: Any) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        response = gw.api.get(f"/v1/sources/{source_id}/refusals", params=params)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data if len(data) >= count else None

    return wait_until(enough, 15, f"{count} refusals of {source_id}")  # type: ignore[no-any-return]


def test_refused_requests_are_logged_without_body_or_signature(gw: Gateway) -> None:
    source = _source(gw)
    body = b'{"action": "opened", "secret_in_body": "do-not-keep-me"}'
    forged = "sha256=" + hmac.new(b"wrong secret", body, hashlib.sha256).hexdigest()
    with anonymous_client(gw) as client:
        missing = client.post(
            f"/in/{source['id']}",
            content=body,
            headers={"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/test"},
        )
        assert missing.status_code == 401, missing.text
        bad = client.post(
            f"/in/{source['id']}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "issues",
                "X-Hub-Signature-256": forged,
                "Authorization": "Bearer not-to-be-kept",
            },
        )
        assert bad.status_code == 401, bad.text
    newest, oldest = _refusals(gw, source["id"], 2)
    assert oldest["reason"] == "missing_header"
    assert oldest["headers"]["user-agent"] == "GitHub-Hookshot/test"
    assert newest["reason"] == "bad_signature"
    assert newest["source_id"] == source["id"]
    assert newest["client"] == "127.0.0.1"
    assert newest["message"] and newest["received_at"].endswith("Z")
    assert newest["headers"]["x-github-event"] == "issues"
    assert newest["headers"]["content-type"] == "application/json"
    # The names of what was sent, not the values of the secret ones.
    assert "x-hub-signature-256" in newest["headers"]["(names)"]
    assert "authorization" in newest["headers"]["(names)"]
    stored = gw.api.get(f"/v1/sources/{source['id']}/refusals").text
    for secret in (forged, forged[7:], "not-to-be-kept", "do-not-keep-me", SECRET):
        assert secret not in stored
    in_db = str(gw.sql("SELECT * FROM source_refusal"))
    assert forged[7:] not in in_db and "do-not-keep-me" not in in_db
    # Still no event from a refused request.
    assert gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"] == []

    # A disabled source's refusals are logged too.
    gw.api.patch(f"/v1/sources/{source['id']}", json={"disabled": True})
    with anonymous_client(gw) as client:
        assert client.post(f"/in/{source['id']}", content=body).status_code == 403
    assert _refusals(gw, source["id"], 3)[0]["reason"] == "disabled"


def test_the_log_is_bounded_per_source(gw: Gateway) -> None:
    noisy, quiet = _source(gw, name="noisy"), _source(gw, name="quiet")
    with anonymous_client(gw) as client:
        client.post(f"/in/{quiet['id']}", content=b"{}")
        for n in range(KEEP_PER_SOURCE + 20):
            client.post(f"/in/{noisy['id']}", content=b"{}", headers={"X-GitHub-Event": f"n{n}"})

    def settled() -> bool:
        rows = gw.sql(f"SELECT count(*) FROM source_refusal WHERE source_id = '{noisy['id']}'")
        data = gw.api.get(f"/v1/sources/{noisy['id']}/refusals", params={"limit": 1}).json()
        last = f"n{KEEP_PER_SOURCE + 19}"
        return (
            rows[0][0] == KEEP_PER_SOURCE and data["data"][0]["headers"]["x-github-event"] == last
        )

    wait_until(settled, 20, f"the noisy source's log to hold its latest {KEEP_PER_SOURCE}")
    kept = _refusals(gw, noisy["id"], KEEP_PER_SOURCE, limit=100)
    assert [r["headers"]["x-github-event"] for r in kept] == [
        f"n{n}" for n in range(KEEP_PER_SOURCE + 19, 19, -1)
    ]
    # Another source's log is its own.
    assert len(_refusals(gw, quiet["id"], 1)) == 1


def test_refusals_are_for_admins_and_known_sources(gw: Gateway) -> None:
    source = _source(gw)
    assert gw.api.get(f"/v1/sources/{UNKNOWN_SOURCE}/refusals").status_code == 404
    assert (
        gw.api.get(f"/v1/sources/{source['id']}/refusals", params={"limit": 0}).status_code == 422
    )
    key = create_key(gw, tenant_id="acme")["key"]
    with client_with(gw, key) as tenant:
        assert tenant.get(f"/v1/sources/{source['id']}/refusals").status_code == 403
    # Deleting the source deletes its log.
    with anonymous_client(gw) as client:
        client.post(f"/in/{source['id']}", content=b"{}")
    _refusals(gw, source["id"], 1)
    assert gw.api.delete(f"/v1/sources/{source['id']}").status_code == 204
    assert gw.sql("SELECT count(*) FROM source_refusal")[0][0] == 0
