"""Endpoint filters in CEL end to end, on both backends, over real HTTP to the receiver.

"Never arrives" is read from order, not from a clock: after the filtered-out event,
a marker event that the filter lets through is published to the same endpoint, and
once the marker has arrived, the earlier event would have too (one endpoint's
deliveries are made in the order they were published only loosely, so the check
waits for the marker and then for every delivery of the filtered-out event: it has
none).
"""

from __future__ import annotations

import json
import uuid
from contextlib import closing
from typing import Any

import markupsafe
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.outbound import filters
from gateway.outbound.filters import Verdict
from tests.support.console import signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import (
    assert_422_naming,
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
)
from tests.support.providers import github_body, github_sign
from tests.support.receiver import Receiver

PAYMENTS = 'data.amount > 1000 && data.currency in ["EUR", "USD"]'


def _arrived(receiver: Receiver, path: str, count: int) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in receiver.wait_for(path, count)]


def _filter_failures(gw: Gateway, endpoint_id: str) -> float:
    text = gw.api.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_filter_failures_total"
        and sample.labels.get("endpoint") == endpoint_id
    )


def test_a_filtered_out_event_never_arrives(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), filter=PAYMENTS)
    assert endpoint["filter"] == PAYMENTS
    other = make_endpoint(gw, receiver.url(path + "/all"))
    small = publish(gw, "payment.made", {"amount": 20, "currency": "EUR"})
    # Ints and doubles compare as numbers: 1500.5 > 1000 as 1500 would.
    large = publish(gw, "payment.made", {"amount": 1500.5, "currency": "USD"})
    assert small["deliveries"] == 1 and large["deliveries"] == 2
    assert [d["endpoint_id"] for d in deliveries_of(gw, small["id"])] == [other["id"]]
    marker = publish(gw, "payment.made", {"amount": 1001, "currency": "EUR", "marker": True})
    got = _arrived(receiver, path, 2)
    assert [e["id"] for e in got] in ([large["id"], marker["id"]], [marker["id"], large["id"]])
    assert {e["id"] for e in _arrived(receiver, path + "/all", 3)} == {
        small["id"],
        large["id"],
        marker["id"],
    }
    assert small["id"] not in {json.loads(r.body)["id"] for r in receiver.received(path)}


def test_an_event_the_filter_fails_on_does_not_match_and_is_counted(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), filter="data.amount > 1000")
    before = _filter_failures(gw, endpoint["id"])
    # A missing key, the wrong type: the publish succeeds, the endpoint gets nothing.
    missing = publish(gw, "payment.made", {"currency": "EUR"})
    wrong = publish(gw, "payment.made", {"amount": "lots"})
    assert missing["deliveries"] == 0 and wrong["deliveries"] == 0
    assert _filter_failures(gw, endpoint["id"]) == before + 2
    marker = publish(gw, "payment.made", {"amount": 5000})
    assert [e["id"] for e in _arrived(receiver, path, 1)] == [marker["id"]]
    assert len(receiver.received(path)) == 1
    assert _filter_failures(gw, endpoint["id"]) == before + 2


def test_a_filter_failing_beside_others_never_fails_the_publish(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    failing = make_endpoint(gw, receiver.url(path + "/a"), filter="data.nested.deep == 1")
    not_bool = make_endpoint(gw, receiver.url(path + "/b"), filter="data.amount")
    plain = make_endpoint(gw, receiver.url(path + "/c"))
    batch = [publish(gw, data={"amount": n}) for n in range(3)]
    for event in batch:
        assert [d["endpoint_id"] for d in deliveries_of(gw, event["id"])] == [plain["id"]]
    assert _filter_failures(gw, failing["id"]) == 3
    assert _filter_failures(gw, not_bool["id"]) == 3
    _arrived(receiver, path + "/c", 3)


def test_type_filters_apply_before_the_expression(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(
        gw, receiver.url(path), event_types=["invoice.*"], filter='type == "invoice.paid"'
    )
    publish(gw, "user.created", {"n": 1})  # not its type: the filter does not even run
    publish(gw, "invoice.voided", {"n": 2})
    paid = publish(gw, "invoice.paid", {"n": 3})
    assert [e["id"] for e in _arrived(receiver, path, 1)] == [paid["id"]]
    assert _filter_failures(gw, endpoint["id"]) == 0


def test_an_inbound_event_is_filtered_on_its_request_headers(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    source = gw.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "gh-secret"}
    ).json()
    make_endpoint(
        gw,
        receiver.url(path),
        source_ids=[source["id"]],
        filter='headers["x-github-event"] == "push" && source_id == "' + source["id"] + '"',
    )
    for event in ("issues", "push"):
        body = github_body(str(uuid.uuid4()), event)
        answer = gw.api.post(
            source["ingest_path"],
            content=body,
            headers=github_sign("gh-secret", body, str(uuid.uuid4()), 0, event=event),
        )
        assert answer.status_code in (200, 202), answer.text
    [request] = receiver.wait_for(path, 1)
    assert json.loads(request.body)["data"]["issue"]["title"] == "push"
    # The issues event had no delivery at all.
    events = gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"]
    counts = sorted(len(deliveries_of(gw, e["id"])) for e in events)
    assert counts == [0, 1]


def test_a_filter_that_does_not_compile_is_a_422_with_its_position(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    for expression, message in [
        ("data.amount >", "line 1, column 14"),
        ("data.amount > 1000 &&\n  data.x ||", "line 2, column 12"),
        ("amount > 1000", "unknown variable amount"),
        ("data.items.map(i, i.price).size() > 0", "map() is not available"),
        ("data.items.exists(i, i.price > data.min)", "only its own variable (i)"),
        ("x" * 2001, "at most 2000"),
    ]:
        response = gw.api.post(
            "/v1/endpoints", json={"url": receiver.url(path), "filter": expression}
        )
        assert_422_naming(response, "filter")
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "filter"], error
        assert message in error["msg"], (expression, error["msg"])
    assert gw.api.get("/v1/endpoints").json()["data"] == []  # nothing half-written
    endpoint = make_endpoint(gw, receiver.url(path), filter=PAYMENTS)
    refused = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"filter": "type =="})
    assert_422_naming(refused, "filter")
    assert "line 1, column 8" in refused.json()["detail"][0]["msg"]
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["filter"] == PAYMENTS


def test_patch_changes_and_null_clears_the_filter(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    assert endpoint["filter"] is None
    url = f"/v1/endpoints/{endpoint['id']}"
    changed = gw.api.patch(url, json={"filter": "data.n == 2"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["filter"] == "data.n == 2"
    assert gw.api.get(url).json()["filter"] == "data.n == 2"
    publish(gw, data={"n": 1})
    second = publish(gw, data={"n": 2})
    assert [e["id"] for e in _arrived(receiver, path, 1)] == [second["id"]]
    # A PATCH of another field keeps it; null clears it.
    assert gw.api.patch(url, json={"description": "x"}).json()["filter"] == "data.n == 2"
    cleared = gw.api.patch(url, json={"filter": None})
    assert cleared.status_code == 200 and cleared.json()["filter"] is None
    assert gw.api.get(url).json()["filter"] is None
    third = publish(gw, data={"n": 3})
    assert [e["id"] for e in _arrived(receiver, path, 2)][1] == third["id"]


def test_the_filter_test_route_says_whether_and_why_not(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), filter=PAYMENTS)
    url = f"/v1/endpoints/{endpoint['id']}/filter/test"

    def tried(**body: object) -> dict[str, object]:
        response = gw.api.post(url, json={"type": "payment.made", **body})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    assert tried(data={"amount": 1500, "currency": "EUR"}) == {"matches": True, "error": None}
    assert tried(data={"amount": 15, "currency": "EUR"}) == {"matches": False, "error": None}
    missing = tried(data={"currency": "EUR"})
    assert missing["matches"] is False and "amount" in str(missing["error"])
    # Another expression, with the variables a received event has.
    assert tried(
        data={},
        headers={"x-github-event": "push"},
        source_id="src_1",
        filter='headers["x-github-event"] == "push" && source_id == "src_1"',
    ) == {"matches": True, "error": None}
    assert tried(data={}, tenant_id="t1", filter='tenant_id == "t1"')["matches"] is True
    not_bool = tried(data={"amount": 3}, filter="data.amount")
    assert not_bool["matches"] is False and "not a bool" in str(not_bool["error"])
    bad = gw.api.post(url, json={"type": "a", "data": {}, "filter": "data.("})
    assert_422_naming(bad, "filter")
    assert "line 1, column" in bad.json()["detail"][0]["msg"]
    unfiltered = make_endpoint(gw, receiver.url(path))
    answer = gw.api.post(
        f"/v1/endpoints/{unfiltered['id']}/filter/test", json={"type": "a", "data": {}}
    )
    assert answer.json() == {"matches": True, "error": None}
    unknown = gw.api.post(
        "/v1/endpoints/ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ/filter/test", json={"type": "a", "data": {}}
    )
    assert unknown.status_code == 404
    assert receiver.received(path) == []  # a test sends nothing


def test_a_tenant_key_filters_and_tests_its_own_endpoints_only(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    theirs = make_endpoint(gw, receiver.url(path + "/t2"), tenant_id="t2", filter="true")
    key = create_key(gw, tenant_id="t1")["key"]
    with client_with(gw, key) as tenant:
        created = tenant.post("/v1/endpoints", json={"url": receiver.url(path), "filter": PAYMENTS})
        assert created.status_code == 201, created.text
        own = created.json()
        assert own["tenant_id"] == "t1" and own["filter"] == PAYMENTS
        sample = {"type": "a", "data": {"amount": 2000, "currency": "USD"}}
        tried = tenant.post(f"/v1/endpoints/{own['id']}/filter/test", json=sample)
        assert tried.json() == {"matches": True, "error": None}
        for response in (
            tenant.post(f"/v1/endpoints/{theirs['id']}/filter/test", json=sample),
            tenant.patch(f"/v1/endpoints/{theirs['id']}", json={"filter": "false"}),
        ):
            assert response.status_code == 404, response.text
        tenant.post("/v1/events", json={"type": "a", "data": {"amount": 5, "currency": "USD"}})
        big = tenant.post("/v1/events", json=sample).json()
    assert [e["id"] for e in _arrived(receiver, path, 1)] == [big["id"]]
    assert gw.api.get(f"/v1/endpoints/{theirs['id']}").json()["filter"] == "true"


def test_the_cli_creates_an_endpoint_with_a_filter(gw: Gateway) -> None:
    created = gw.run_cli(
        "endpoints", "create", "https://a.example/h", "--filter", PAYMENTS, "--json"
    )
    assert created.returncode == 0, created.stderr
    endpoint = json.loads(created.stdout)
    assert endpoint["filter"] == PAYMENTS
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["filter"] == PAYMENTS
    refused = gw.run_cli("endpoints", "create", "https://b.example/h", "--filter", "data.x >")
    assert refused.returncode == 2, refused.stdout
    assert "--filter" in refused.stderr and "line 1, column 9" in refused.stderr


def test_the_console_form_saves_shows_and_refuses_a_filter(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    client, csrf = signed_in_client(gw)
    with closing(client):
        refused = client.post(
            "/console/endpoints/new",
            data={"csrf_token": csrf, "url": receiver.url(path), "filter": "data.amount >"},
        )
        assert refused.status_code == 422
        assert "line 1, column 14" in refused.text
        assert "data.amount &gt;</textarea>" in refused.text  # kept as typed
        assert gw.api.get("/v1/endpoints").json()["data"] == []
        created = client.post(
            "/console/endpoints/new",
            data={"csrf_token": csrf, "url": receiver.url(path), "filter": PAYMENTS},
        )
        assert created.status_code == 303, created.text
        [endpoint] = gw.api.get("/v1/endpoints").json()["data"]
        assert endpoint["filter"] == PAYMENTS
        page = client.get(f"/console/endpoints/{endpoint['id']}")
        assert str(markupsafe.escape(PAYMENTS)) in page.text
        form = client.get(f"/console/endpoints/{endpoint['id']}/edit")
        assert str(markupsafe.escape(PAYMENTS)) + "</textarea>" in form.text
        # Emptied in the form: no filter.
        cleared = client.post(
            f"/console/endpoints/{endpoint['id']}/edit",
            data={"csrf_token": csrf, "url": receiver.url(path), "filter": " "},
        )
        assert cleared.status_code == 303, cleared.text
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["filter"] is None


# The rules of filters.py on their own, without a gateway.


@pytest.mark.parametrize(
    ("expression", "data", "verdict"),
    [
        (PAYMENTS, {"amount": 1500, "currency": "EUR"}, (True, None)),
        (PAYMENTS, {"amount": 1500.5, "currency": "USD"}, (True, None)),
        (PAYMENTS, {"amount": 999.5, "currency": "EUR"}, (False, None)),
        ("data.amount == 1500", {"amount": 1500.0}, (True, None)),
        ('has(data.x) && data["x"] == 1', {"x": 1}, (True, None)),
        ("has(data.x)", {"y": 1}, (False, None)),
        ('"x" in data', {"x": 1}, (True, None)),
        ("data.size() == 2", {"x": 1, "y": 2}, (True, None)),
        (
            "data.items.exists(i, i.sku == 'a')",
            {"items": [{"sku": "b"}, {"sku": "a"}]},
            (True, None),
        ),
        ("data.o.exists(o, o.l.all(l, l > 0))", {"o": [{"l": [1, 2]}, {"l": [3]}]}, (True, None)),
        ("data.amount > 1", {}, (False, "no such key: amount")),
        ("data.amount", {"amount": 3}, (False, "the filter gave 3, not a bool")),
    ],
)
def test_verdicts_on_json_data(expression: str, data: dict[str, Any], verdict: Verdict) -> None:
    found = filters.verdicts(frozenset([expression]), "payment.made", data, None, None, None)
    assert found == {expression: verdict}


def test_only_the_keys_read_are_converted_and_the_verdicts_are_the_same() -> None:
    assert filters.compiled(PAYMENTS).data_keys == {"amount", "currency"}
    assert filters.compiled('data["a-b"] == 1 && data.c.d == 2').data_keys == {"a-b", "c"}
    for whole in ("data.size() > 1", '"a" in data', "data == {}", "data[type] == 1"):
        assert filters.compiled(whole).data_keys is None, whole
    data = {"amount": 1200, "currency": "EUR", "other": "x" * 100}
    together = filters.verdicts(
        frozenset([PAYMENTS, "data.size() == 3", "has(data.other)"]), "t", data, None, None, None
    )
    assert together == {
        PAYMENTS: (True, None),
        "data.size() == 3": (True, None),
        "has(data.other)": (True, None),
    }
    assert filters.verdicts(
        frozenset(["has(data.other)", PAYMENTS]), "t", data, None, None, None
    ) == {
        "has(data.other)": (True, None),
        PAYMENTS: (True, None),
    }
