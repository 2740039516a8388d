"""Schemathesis against the gateway's own OpenAPI document: every operation, both backends.

The schema is loaded from the running gateway (`GET /openapi.json`), so what is checked
is what users are told. Each operation is its own test: before fuzzing it, a few real
objects are created (two endpoints towards the closed port 127.0.0.1:9, one disabled;
github, standard and hmac sources; a published event with its delivery; a received
event; an API key), and half of the generated cases use their ids, so that requests
reach past "404 not found" into the route's logic. Cases come in both of schemathesis's
modes: positive (valid per the schema) and negative (invalid on purpose, which must be
refused with a documented 4xx). Every request carries the admin key.

Each response must pass: no 5xx, a documented status code, a documented content type,
a body that matches the documented schema (and documented headers, where there are any).
A failing case does not stop the run: every case of the operation is sent, and each
distinct failure (operation, check, status) is reported once with a curl command that
reproduces it. Failures listed in KNOWN_BUGS are gateway bugs waiting for a fix: they
turn the test into an xfail naming them; any other failure fails it.
test_pinned_request_conforms sends, through the same checks, the requests the fuzzer
meets rarely or never: each known bug's reproduction, and signed inbound requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup

from tests.support.gateway import API_KEY, Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Port 9 (discard) is closed here: deliveries to it fail at once, harmlessly.
CLOSED_URL = "http://127.0.0.1:9/"
GITHUB_SECRET = "schemathesis-github-secret"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"schemathesis-standard-secret-0123").decode()
SLACK_SECRET = "schemathesis-slack-signing-secret"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Cases per operation (positive and negative together): the whole file takes about 20 s
# per backend on 2 cores. GATEWAY_TEST_FUZZ_EXAMPLES=1000 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("GATEWAY_TEST_FUZZ_EXAMPLES", "50"))
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# Every route of the document; test_every_operation_is_fuzzed fails when one is added
# or removed without this list following. `/metrics` (Prometheus text, no documented
# content) and `/in/{source_id}` (a raw body the document does not describe, so only the
# path is generated: unknown ids get 404, the real source 401 for the missing signature)
# are fuzzed too; schemathesis generates sensibly for both.
OPERATIONS = (
    "POST /v1/endpoints",
    "GET /v1/endpoints",
    "GET /v1/endpoints/{endpoint_id}",
    "PATCH /v1/endpoints/{endpoint_id}",
    "DELETE /v1/endpoints/{endpoint_id}",
    "POST /v1/endpoints/{endpoint_id}/transformation/test",
    "GET /v1/endpoints/{endpoint_id}/secret",
    "GET /v1/endpoints/{endpoint_id}/auth",
    "POST /v1/endpoints/{endpoint_id}/secret/rotate",
    "POST /v1/endpoints/{endpoint_id}/test",
    "POST /v1/endpoints/{endpoint_id}/recover",
    "POST /v1/endpoints/{endpoint_id}/filter/test",
    "GET /v1/endpoints/{endpoint_id}/deliveries",
    # The fuzzed endpoints are http ones (404): no case opens a stream that never ends.
    "GET /v1/endpoints/{endpoint_id}/stream",
    "POST /v1/endpoints/{endpoint_id}/stream/ack",
    "POST /v1/events",
    "POST /v1/events/batch",
    "GET /v1/events",
    "GET /v1/events/{event_id}",
    "GET /v1/events/{event_id}/deliveries",
    "GET /v1/deliveries/{delivery_id}",
    "POST /v1/deliveries/{delivery_id}/retry",
    "POST /v1/deliveries/{delivery_id}/skip",
    "POST /v1/sources",
    "GET /v1/sources",
    "GET /v1/sources/{source_id}",
    "PATCH /v1/sources/{source_id}",
    "DELETE /v1/sources/{source_id}",
    "GET /v1/sources/{source_id}/secret",
    "POST /v1/sources/{source_id}/transformation/test",
    "POST /v1/api-keys",
    "GET /v1/api-keys",
    "DELETE /v1/api-keys/{key_id}",
    "POST /v1/portal-links",
    "POST /v1/portal-links/revoke",
    "GET /v1/stats",
    "GET /v1/endpoints/{endpoint_id}/stats",
    "GET /v1/sources/{source_id}/refusals",
    "POST /v1/event-types",
    "GET /v1/event-types",
    "GET /v1/event-types/{name}",
    "PATCH /v1/event-types/{name}",
    "DELETE /v1/event-types/{name}",
    "POST /v1/event-types/import",
    "POST /in/{source_id}",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
)


# What uvicorn's HTTP parser answers a message that is not valid HTTP/1.1.
UVICORN_REFUSAL = "Invalid HTTP request received."


@dataclass(frozen=True)
class KnownBug:
    """A failure the gateway is known to have: schemathesis failure code and status."""

    operations: frozenset[str]
    code: str
    status: int
    reason: str


JSON_BODY_OPERATIONS = frozenset(
    {
        "POST /v1/endpoints",
        "PATCH /v1/endpoints/{endpoint_id}",
        "POST /v1/endpoints/{endpoint_id}/secret/rotate",
        "POST /v1/endpoints/{endpoint_id}/recover",
        "POST /v1/endpoints/{endpoint_id}/filter/test",
        "POST /v1/endpoints/{endpoint_id}/stream/ack",
        "POST /v1/events",
        "POST /v1/events/batch",
        "POST /v1/sources",
        "PATCH /v1/sources/{source_id}",
        "POST /v1/endpoints/{endpoint_id}/transformation/test",
        "POST /v1/sources/{source_id}/transformation/test",
        "POST /v1/api-keys",
        "POST /v1/portal-links",
        "POST /v1/portal-links/revoke",
        "POST /v1/endpoints/{endpoint_id}/test",
        "POST /v1/event-types",
        "PATCH /v1/event-types/{name}",
        "POST /v1/event-types/import",
    }
)
# Gateway bugs waiting for a fix: (operations, check code, status, reason). Empty now:
# the three schemathesis found (a non-UTF-8 body answered 400, recover overflowing on
# extreme dates, the Slack challenge answer undocumented) are fixed and pinned below.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


@dataclass
class Found:
    """One distinct failure and the smallest case seen to cause it."""

    code: str
    title: str
    status: int
    report: str
    count: int = 1


@pytest.fixture(scope="module")
def api_schema(gateway: Gateway) -> schemathesis.BaseSchema:
    """The document the running gateway serves (the same on every test of a backend)."""
    # An explicit default config: no schemathesis.toml found on the way changes the run.
    return schemathesis.openapi.from_url(
        f"http://127.0.0.1:{gateway.port}/openapi.json", config=schemathesis.Config(), timeout=30
    )


def test_every_operation_is_fuzzed(gw: Gateway, api_schema: schemathesis.BaseSchema) -> None:
    documented = set()
    for result in api_schema.get_all_operations():
        # An operation schemathesis cannot read would not be fuzzed at all.
        assert isinstance(result, Ok), result.err()
        documented.add(result.ok().label)
    assert documented == set(OPERATIONS), (
        f"new routes: {sorted(documented - set(OPERATIONS))}, "
        f"gone: {sorted(set(OPERATIONS) - documented)}"
    )


def _make_source(gw: Gateway, provider: str, secret: str, **fields: object) -> str:
    response = gw.api.post(
        "/v1/sources",
        json={"name": f"fuzz {provider}", "provider": provider, "secret": secret, **fields},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _real_objects(gw: Gateway) -> dict[str, list[str]]:
    """Create a few objects of each kind; their ids by path parameter name.

    The first id of each list is the plain one: an enabled endpoint, a GitHub source.
    """
    endpoint = make_endpoint(gw, CLOSED_URL, description="schemathesis")
    disabled = make_endpoint(gw, CLOSED_URL, disabled=True, tenant_id="t-fuzz")
    github = _make_source(gw, "github", GITHUB_SECRET)
    # Providers whose secret or options a PATCH is checked against.
    standard = _make_source(gw, "standard", STANDARD_SECRET)
    custom = _make_source(gw, "hmac", "fuzz-hmac-secret", options={"header": "X-Signature"})
    # A catalogued type: events of it are checked against its schema.
    response = gw.api.post(
        "/v1/event-types",
        json={
            "name": "fuzz.created",
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            "examples": [{"n": 1}],
        },
    )
    assert response.status_code == 201, response.text
    published = publish(gw, "fuzz.created", {"n": 1})
    [delivery] = deliveries_of(gw, published["id"])
    body = json.dumps({"action": "opened", "n": 1}).encode()
    signature = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = gw.api.post(
        f"/in/{github}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    assert response.status_code == 200, response.text
    received = response.json()["event_id"]
    response = gw.api.post("/v1/api-keys", json={"name": "fuzz", "tenant_id": "t-fuzz"})
    assert response.status_code == 201, response.text
    return {
        "endpoint_id": [endpoint["id"], disabled["id"]],
        "event_id": [published["id"], received],
        "delivery_id": [delivery["id"]],
        "source_id": [github, standard, custom],
        "key_id": [response.json()["id"]],
        "name": ["fuzz.created"],
    }


def _cases(operation: Any, ids: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """Positive and negative cases; half of those with an id use a real object's."""
    modes = [GenerationMode.POSITIVE]
    if operation.path_parameters or operation.query or operation.headers or operation.body:
        # Negative generation needs something to make invalid.
        modes.append(GenerationMode.NEGATIVE)
    names = [parameter.name for parameter in operation.path_parameters]
    strategies = []
    for mode in modes:
        generated = operation.as_strategy(generation_mode=mode)
        if len(names) == 1 and names[0] in ids:
            real = st.one_of(
                *[
                    operation.as_strategy(generation_mode=mode, path_parameters={names[0]: value})
                    for value in ids[names[0]]
                ]
            )
            strategies.append(st.one_of(generated, real))
        else:
            strategies.append(generated)
    return st.one_of(*strategies)


def _known(label: str, found: Found) -> KnownBug | None:
    for bug in KNOWN_BUGS:
        if label in bug.operations and (found.code, found.status) == (bug.code, bug.status):
            return bug
    return None


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms(gw: Gateway, api_schema: schemathesis.BaseSchema, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    ids = _real_objects(gw)
    found: dict[tuple[str, int, str], Found] = {}

    with requests.Session() as session:

        @FUZZ_SETTINGS
        @given(case=_cases(operation, ids))
        def run(case: schemathesis.Case) -> None:
            response = case.call(session=session, headers=AUTH, timeout=30)
            if response.status_code == 400 and response.text == UVICORN_REFUSAL:
                # uvicorn refused the message as HTTP (a generated `transfer-encoding: _Q`
                # header, say) before any route saw it: no operation's answer to check.
                return
            try:
                case.validate_response(response, checks=CHECKS, headers=AUTH)
            except FailureGroup as group:
                for failure in group.exceptions:
                    if failure.code == "ST103" and response.status_code >= 500:
                        continue  # the same case's "Server error" (ST101) reports it
                    key = (failure.code, response.status_code, failure.title)
                    report = str(group)
                    if key not in found:
                        found[key] = Found(
                            failure.code, failure.title, response.status_code, report
                        )
                        continue
                    found[key].count += 1
                    if len(report) < len(found[key].report):
                        found[key].report = report

        run()

    unknown = [f for f in found.values() if _known(label, f) is None]
    if unknown:
        pytest.fail(
            f"{label}: {len(unknown)} distinct failure(s) in up to {MAX_EXAMPLES} cases\n\n"
            + "\n\n".join(
                f"--- {f.code} {f.title} (status {f.status}, {f.count} case(s))\n{f.report}"
                for f in unknown
            ),
            pytrace=False,
        )
    known = {bug.reason for f in found.values() if (bug := _known(label, f)) is not None}
    if known:
        pytest.xfail("; ".join(sorted(known)))


# Requests the fuzzer meets only by chance, or never (a signed inbound request), sent as
# they are and validated with the same checks: the reproductions of the bugs fuzzing
# found, and the signed answers of POST /in/{source_id}.
SLACK_URL_VERIFICATION = json.dumps(
    {"type": "url_verification", "token": "fuzz", "challenge": "schemathesis-challenge"}
).encode()
GITHUB_ISSUE = json.dumps({"action": "closed", "issue": {"number": 7}}).encode()


PINNED = [
    *[
        pytest.param(label, "raw", b"\xff", id=f"non-utf8-body {label}")
        for label in sorted(JSON_BODY_OPERATIONS)
    ],
    pytest.param(
        "POST /v1/endpoints/{endpoint_id}/recover",
        "json",
        {"since": "0001-01-01T00:00:00+01:00"},
        id="recover since-before-year-1",
    ),
    pytest.param(
        "POST /v1/endpoints/{endpoint_id}/recover",
        "json",
        {"since": "2020-01-01T00:00:00Z", "until": "9999-12-31T23:59:59-01:00"},
        id="recover until-after-year-9999",
    ),
    pytest.param(
        "POST /in/{source_id}", "slack", SLACK_URL_VERIFICATION, id="inbound slack url_verification"
    ),
    pytest.param(
        "POST /in/{source_id}", "github", GITHUB_ISSUE, id="inbound github accepted then duplicate"
    ),
]


@pytest.mark.parametrize(("label", "kind", "payload"), PINNED)
def test_pinned_request_conforms(
    gw: Gateway, api_schema: schemathesis.BaseSchema, label: str, kind: str, payload: Any
) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    ids = _real_objects(gw)
    path_parameters = {p.name: ids[p.name][0] for p in operation.path_parameters}
    headers = dict(AUTH)
    if kind == "json":
        case = operation.Case(
            path_parameters=path_parameters, body=payload, media_type="application/json"
        )
    else:
        # Raw bytes sent as they are, labelled JSON (/in/{id} documents no body at all).
        case = operation.Case(
            path_parameters=path_parameters, body=payload, media_type="application/octet-stream"
        )
        headers["Content-Type"] = "application/json"
    if kind == "slack":
        path_parameters["source_id"] = _make_source(gw, "slack", SLACK_SECRET)
        timestamp = str(int(time.time()))
        digest = hmac.new(
            SLACK_SECRET.encode(), f"v0:{timestamp}:".encode() + payload, hashlib.sha256
        ).hexdigest()
        headers.update(
            {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}
        )
    elif kind == "github":
        digest = hmac.new(GITHUB_SECRET.encode(), payload, hashlib.sha256).hexdigest()
        headers.update(
            {
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": f"sha256={digest}",
            }
        )
    statuses = []
    with requests.Session() as session:
        for _ in range(2 if kind == "github" else 1):
            response = case.call(session=session, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS, headers=headers)
            statuses.append(response.json().get("status") if kind == "github" else None)
    if kind == "github":
        assert statuses == ["accepted", "duplicate"]
