"""The tenant rule: an endpoint with a `tenant_id` receives only that tenant's events.

An event without a tenant (published so, or received through a source, which the
operator owns) reaches only endpoints without one, unless an admin key names the
endpoints by id. A tenant-scoped key cannot reach sources it cannot see.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import client_with, create_key, deliveries_of, make_endpoint, publish
from tests.support.providers import CASE_BY_PROVIDER, accepted, create_source, post_in
from tests.support.receiver import Receiver, wait_until


@pytest.fixture
def tenant_a(gw: Gateway):  # type: ignore[no-untyped-def]
    with client_with(gw, str(create_key(gw, tenant_id="tenantA")["key"])) as client:
        yield client


def _assert_nothing_for(gw: Gateway, receiver: Receiver, path: str, endpoint_id: str) -> None:
    assert receiver.received(path) == []
    listed = gw.api.get(f"/v1/endpoints/{endpoint_id}/deliveries")
    assert listed.status_code == 200 and listed.json()["data"] == [], listed.text


def test_an_event_without_a_tenant_reaches_no_tenant_endpoint(
    gw: Gateway,
    tenant_a,
    receiver: Receiver,
    path: str,  # type: ignore[no-untyped-def]
) -> None:
    created = tenant_a.post("/v1/endpoints", json={"url": receiver.url(f"{path}/a")})
    assert created.status_code == 201, created.text
    mine = created.json()
    assert mine["tenant_id"] == "tenantA"
    operator = make_endpoint(gw, receiver.url(f"{path}/operator"))
    other_tenant = make_endpoint(gw, receiver.url(f"{path}/b"), tenant_id="tenantB")

    # Published by the admin without a tenant: the operator's endpoint only.
    event = publish(gw, "invoice.paid", {"secret": "operator data"})
    assert event["deliveries"] == 1
    assert [d["endpoint_id"] for d in deliveries_of(gw, event["id"])] == [operator["id"]]

    # Received through the operator's GitHub source: the operator's endpoint only.
    case = CASE_BY_PROVIDER["github"]
    source = create_source(gw, case)
    body, headers = case.signed(str(uuid.uuid4()))
    inbound_id = accepted(post_in(gw, source, body, headers))
    wait_until(
        lambda: len(receiver.received(f"{path}/operator")) == 2,
        15,
        "both events at the operator's endpoint",
    )
    assert [d["endpoint_id"] for d in deliveries_of(gw, inbound_id)] == [operator["id"]]

    # A tenant's event: that tenant's endpoints only.
    own = publish(gw, "invoice.paid", {"n": 2}, tenant_id="tenantA")
    assert [d["endpoint_id"] for d in deliveries_of(gw, own["id"])] == [mine["id"]]
    [request] = receiver.wait_for(f"{path}/a", 1)
    assert json.loads(request.body)["id"] == own["id"]
    assert tenant_a.get(f"/v1/events/{event['id']}").status_code == 404
    assert tenant_a.get(f"/v1/events/{inbound_id}").status_code == 404
    listed = tenant_a.get(f"/v1/endpoints/{mine['id']}/deliveries").json()["data"]
    assert [d["event_id"] for d in listed] == [own["id"]]
    _assert_nothing_for(gw, receiver, f"{path}/b", other_tenant["id"])


def test_the_admin_may_name_a_tenant_endpoint_by_id(
    gw: Gateway,
    tenant_a,
    receiver: Receiver,
    path: str,  # type: ignore[no-untyped-def]
) -> None:
    mine = make_endpoint(gw, receiver.url(path), tenant_id="tenantA")
    other = make_endpoint(gw, receiver.url(f"{path}/b"), tenant_id="tenantB")
    event = publish(gw, "notice.sent", {"n": 1}, endpoint_ids=[mine["id"]])
    assert event["deliveries"] == 1
    receiver.wait_for(path, 1)
    # A tenant's key cannot name another tenant's endpoint, nor get around its own tenant.
    refused = tenant_a.post(
        "/v1/events", json={"type": "x.y", "data": {}, "endpoint_ids": [other["id"]]}
    )
    assert refused.status_code == 422, refused.text
    assert other["id"] in refused.text


def test_a_tenant_key_cannot_reference_sources(
    gw: Gateway,
    tenant_a,
    receiver: Receiver,  # type: ignore[no-untyped-def]
) -> None:
    source = create_source(gw, CASE_BY_PROVIDER["github"])
    assert tenant_a.get("/v1/sources").status_code == 403
    answers = [
        tenant_a.post("/v1/endpoints", json={"url": receiver.url("/s"), "source_ids": [source_id]})
        for source_id in (source["id"], "src_01NOSUCHSOURCE0000000000000")
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "source_ids"]
    # The same answer whether the source exists or not: nothing leaks.
    assert answers[0].json()["detail"][0]["msg"] == answers[1].json()["detail"][0]["msg"]
    assert source["id"] not in answers[0].text
    mine = tenant_a.post("/v1/endpoints", json={"url": receiver.url("/s")}).json()
    patched = tenant_a.patch(f"/v1/endpoints/{mine['id']}", json={"source_ids": [source["id"]]})
    assert patched.status_code == 422, patched.text
    assert gw.sql("SELECT COUNT(*) FROM endpoint")[0][0] == 1


def test_source_ids_must_name_sources_and_an_endpoint_without_a_tenant(
    gw: Gateway, receiver: Receiver
) -> None:
    source = create_source(gw, CASE_BY_PROVIDER["github"])
    unknown = gw.api.post(
        "/v1/endpoints", json={"url": receiver.url("/s"), "source_ids": [source["id"], "src_nope"]}
    )
    assert unknown.status_code == 422, unknown.text
    assert "unknown source_ids: src_nope" in unknown.text
    for_tenant = gw.api.post(
        "/v1/endpoints",
        json={"url": receiver.url("/s"), "source_ids": [source["id"]], "tenant_id": "tenantA"},
    )
    assert for_tenant.status_code == 422, for_tenant.text
    endpoint = make_endpoint(gw, receiver.url("/s"), source_ids=[source["id"]])
    moved = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"tenant_id": "tenantA"})
    assert moved.status_code == 422, moved.text
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["tenant_id"] is None


def test_a_tenant_lists_only_deliveries_to_its_own_endpoints(gw: Gateway) -> None:
    """An endpoint moved to another tenant takes its deliveries with it, even those of the
    first tenant's events: a tenant lists what it can open (GET /v1/deliveries/{id})."""
    endpoint = make_endpoint(gw, "https://hooks.acme.example/in", tenant_id="acme")
    event = publish(gw, "invoice.paid", tenant_id="acme")
    acme = client_with(gw, create_key(gw, name="acme", tenant_id="acme")["key"])
    [delivery] = acme.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
    assert gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"tenant_id": "globex"}).is_success

    assert acme.get(f"/v1/events/{event['id']}/deliveries").json()["data"] == []
    assert acme.get(f"/v1/deliveries/{delivery['id']}").status_code == 404
    assert [d["id"] for d in deliveries_of(gw, event["id"])] == [delivery["id"]]  # admin
