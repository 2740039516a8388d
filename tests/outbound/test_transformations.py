"""Endpoint transformations end to end: JavaScript that changes a delivery, cancels it,
or fails it, over real HTTP to the receiver, on both backends.

The runaway test runs a gateway of its own whose time limit is long (3 s), so that
"the other endpoints were not held" is read from the order things happen in, not
from a clock: all of them arrive while the runaway's attempt is still running.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.outbound.test_ssrf import Listener
from tests.support.dns import ScriptedDNS
from tests.support.gateway import BACKENDS, Gateway, own_gateway
from tests.support.helpers import (
    assert_422_naming,
    client_with,
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, wait_until

RENAME = """
function handler(webhook) {
  const data = webhook.payload.data;
  webhook.payload = { kind: webhook.event_type, who: data.user.toUpperCase() };
  webhook.headers["X-Transformed"] = "yes";
  webhook.url = webhook.url + "/moved";
  return webhook;
}
"""


def _attempts(gw: Gateway, delivery_id: str) -> list[dict[str, Any]]:
    return gw.api.get(f"/v1/deliveries/{delivery_id}").json()["attempts"]  # type: ignore[no-any-return]


def _failed_attempt(gw: Gateway, delivery_id: str) -> dict[str, Any]:
    attempts = wait_until(lambda: _attempts(gw, delivery_id), 15, f"an attempt of {delivery_id}")
    return attempts[0]  # type: ignore[no-any-return]


def test_a_transformed_event_arrives_changed_and_verifies(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), transformation=RENAME)
    assert endpoint["transformation"] == RENAME
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["transformation"] == RENAME
    event = publish(gw, "user.created", {"user": "ada"})
    [request] = receiver.wait_for(path + "/moved", 1)
    assert json.loads(request.body) == {"kind": "user.created", "who": "ADA"}
    assert request.headers["x-transformed"] == "yes"
    assert request.headers["webhook-id"] == event["id"]
    # Signed over the body as sent, the transformed one.
    Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert receiver.received(path) == []


def test_cancel_records_a_cancelled_delivery_and_sends_nothing(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    code = "function handler(w) { return w.payload.data.skip ? {cancel: true} : w; }"
    endpoint = make_endpoint(gw, receiver.url(path), transformation=code)
    skipped = publish(gw, data={"skip": True})
    [delivery] = deliveries_of(gw, skipped["id"])
    detail = wait_delivery(gw, delivery["id"], "cancelled")
    assert detail["attempts"] == [] and detail["attempt_count"] == 0
    assert detail["next_attempt_at"] is None
    listed = gw.api.get(
        f"/v1/endpoints/{endpoint['id']}/deliveries", params={"status": "cancelled"}
    )
    assert listed.status_code == 200, listed.text
    assert [d["id"] for d in listed.json()["data"]] == [delivery["id"]]
    events = gw.api.get("/v1/events", params={"delivery_status": "cancelled"})
    assert [e["id"] for e in events.json()["data"]] == [skipped["id"]], events.text
    # The next event is sent; the cancelled one never was.
    publish(gw, data={"skip": False})
    [request] = receiver.wait_for(path, 1)
    assert json.loads(request.body)["data"] == {"skip": False}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("function handler(w) { throw new Error('no such customer'); }", "no such customer"),
        ("function handler(w) { while (true) {} }", "did not finish within 100 ms"),
        ("function handler(w) { return [w]; }", "must return the webhook object"),
        ("function handler(w) { return {payload: 'x'.repeat(2e6)}; }", "over the limit"),
        ("function handler(w) { return {url: w.url}; }", "payload is missing"),
        (
            "function handler(w) { w.headers['webhook-signature'] = 'v1,forged'; return w; }",
            "set by the gateway",
        ),
        ("function handler(w) { w.url = 'ftp://x.example/'; return w; }", "http or https"),
    ],
    ids=["throw", "loop", "shape", "oversized", "no-payload", "reserved-header", "bad-url"],
)
def test_a_failing_transformation_fails_its_attempt_with_the_error(
    gw: Gateway, receiver: Receiver, path: str, code: str, error: str
) -> None:
    bad = make_endpoint(gw, receiver.url(path + "/bad"), transformation=code)
    good = make_endpoint(gw, receiver.url(path), transformation="function handler(w) {return w}")
    event = publish(gw)
    receiver.wait_for(path, 1)
    by_endpoint = {d["endpoint_id"]: d for d in deliveries_of(gw, event["id"])}
    attempt = _failed_attempt(gw, by_endpoint[bad["id"]]["id"])
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("transformation failed: ")
    assert error in attempt["error"]
    assert receiver.received(path + "/bad") == []
    assert by_endpoint[good["id"]]["id"]


def test_a_transformed_url_to_a_private_address_is_refused_at_connect_time(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    listener = Listener("127.0.0.2")
    try:
        literal = f"http://127.0.0.2:{listener.port}/hook"
        name = "transformed-rebound.test"
        gw.dns.resolver.script(name, ["127.0.0.2"])
        by_name = f"http://{name}:{listener.port}/hook"
        ids = []
        for url in (literal, by_name):
            code = f"function handler(w) {{ w.url = {json.dumps(url)}; return w; }}"
            ids.append(make_endpoint(gw, receiver.url(path), transformation=code)["id"])
        event = publish(gw)
        for delivery in deliveries_of(gw, event["id"]):
            attempt = _failed_attempt(gw, delivery["id"])
            assert attempt["error"].startswith("refused: "), attempt
            assert "GATEWAY_ALLOWED_NETWORKS" in attempt["error"]
        assert listener.connections == 0
        assert receiver.received(path) == []
    finally:
        listener.close()


def test_a_transformation_that_does_not_compile_is_a_422(gw: Gateway, receiver: Receiver) -> None:
    for code, message in [
        ("function handler(w) { return w", "SyntaxError"),
        ("function transform(w) { return w }", "must define function handler"),
        ("function handler(w) { return w }\n}); (function() {", "SyntaxError"),
    ]:
        response = gw.api.post(
            "/v1/endpoints", json={"url": receiver.url("/x"), "transformation": code}
        )
        assert_422_naming(response, "transformation")
        assert message in response.text
    assert gw.api.get("/v1/endpoints").json()["data"] == []
    endpoint = make_endpoint(gw, receiver.url("/x"), transformation="function handler(w){return w}")
    response = gw.api.patch(
        f"/v1/endpoints/{endpoint['id']}", json={"transformation": "function handler("}
    )
    assert_422_naming(response, "transformation")
    kept = gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()
    assert kept["transformation"] == "function handler(w){return w}"
    cleared = gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"transformation": None})
    assert cleared.status_code == 200 and cleared.json()["transformation"] is None


def test_a_tenant_tests_only_its_own_endpoints_transformations(
    gw: Gateway, receiver: Receiver
) -> None:
    code = "function handler(w) { w.payload.seen = true; return w; }"
    theirs = make_endpoint(gw, receiver.url("/t"), tenant_id="acme", transformation=code)
    other = make_endpoint(gw, receiver.url("/o"), tenant_id="globex", transformation=code)
    key = create_key(gw, tenant_id="acme")["key"]
    with closing(client_with(gw, key)) as tenant:
        mine = tenant.post(f"/v1/endpoints/{theirs['id']}/transformation/test", json={})
        assert mine.status_code == 200, mine.text
        sample = mine.json()["result"]["payload"]  # a sample body, changed by the code
        assert sample["seen"] is True and sample["type"] == "webhook.test"
        not_mine = tenant.post(
            f"/v1/endpoints/{other['id']}/transformation/test", json={"code": code}
        )
        assert not_mine.status_code == 404, not_mine.text


def test_the_test_route_runs_saved_or_given_code(gw: Gateway, receiver: Receiver) -> None:
    endpoint = make_endpoint(gw, receiver.url("/x"), transformation=RENAME)
    route = f"/v1/endpoints/{endpoint['id']}/transformation/test"
    sample = {"data": {"user": "bo"}}
    response = gw.api.post(route, json={"event_type": "user.created", "payload": sample})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["error"] is None
    assert result["result"]["payload"] == {"kind": "user.created", "who": "BO"}
    assert result["result"]["url"] == receiver.url("/x") + "/moved"
    failing = gw.api.post(route, json={"code": "function handler(w) { return w.nope.nope }"})
    assert failing.status_code == 200, failing.text
    assert failing.json()["result"] is None
    assert "TypeError" in failing.json()["error"]
    # The test sends nothing.
    assert receiver.received("/x") == [] and receiver.received("/x/moved") == []


@pytest.fixture(scope="module", params=BACKENDS)
def patient_gw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> Iterator[Gateway]:
    workdir: Path = tmp_path_factory.mktemp(f"transform-{request.param}")
    with own_gateway(request.param, workdir, dns, GATEWAY_TRANSFORM_TIMEOUT_MS="3000") as gw:
        yield gw


def test_a_runaway_script_does_not_hold_the_other_endpoints(
    patient_gw: Gateway, receiver: Receiver, path: str
) -> None:
    gw = patient_gw
    gw.reset()
    runaway = make_endpoint(
        gw, receiver.url(path + "/runaway"), transformation="function handler(w) {while(true){}}"
    )
    code = "function handler(w) { w.payload.data.seen = true; return w; }"
    others = [make_endpoint(gw, receiver.url(f"{path}/{i}"), transformation=code) for i in range(9)]
    event = publish(gw)
    for i in range(len(others)):
        [request] = receiver.wait_for(f"{path}/{i}", 1)
        assert json.loads(request.body)["data"]["seen"] is True
    # All nine arrived while the runaway still ran (its limit is 3 s): none waited for it.
    [stuck] = [d for d in deliveries_of(gw, event["id"]) if d["endpoint_id"] == runaway["id"]]
    assert _attempts(gw, stuck["id"]) == []
    attempt = _failed_attempt(gw, stuck["id"])
    assert "did not finish within 3000 ms" in attempt["error"]
    assert receiver.received(path + "/runaway") == []


def test_processes_that_ran_transformations_stop_on_sigterm(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    """Isolates, with threads of their own, do not hold a process that is told to stop."""
    make_endpoint(gw, receiver.url(path), transformation="function handler(w) {return w}")
    publish(gw)
    receiver.wait_for(path, 1)
    for proc in [*gw.workers, gw.server]:
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        # Ended by the signal once shut down (uvicorn raises it again), or exit 0;
        # TimeoutExpired if it hangs.
        assert proc.wait(30) in (0, -signal.SIGTERM)
    gw.workers.clear()  # the `gw` fixture starts them again for the next test
