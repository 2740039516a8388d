"""A source with `validate: true` checks each received event's data against its type's
schema in the catalogue: what fails is refused with 400 before anything is stored, and
logged among the source's refusals without the data's values."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.support.gateway import Gateway
from tests.support.helpers import make_endpoint
from tests.support.providers import (
    CASE_BY_PROVIDER,
    accepted,
    create_source,
    events,
    github_sign,
    post_in,
)
from tests.support.receiver import Receiver, wait_until

pytestmark = pytest.mark.usefixtures("forget_event_types")


GITHUB = CASE_BY_PROVIDER["github"]
ISSUES_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"const": "opened"},
        "issue": {
            "type": "object",
            "properties": {"number": {"type": "integer"}},
            "required": ["number"],
        },
    },
    "required": ["action", "issue"],
}


def _request(number: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"action": "opened", "issue": {"number": number, "title": "t"}}).encode()
    return body, github_sign(GITHUB.secret, body, str(uuid.uuid4()), int(time.time()))


def test_a_validating_source_refuses_data_that_fails_the_schema(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    created = gw.api.post(
        "/v1/event-types",
        json={"name": "issues.opened", "schema": ISSUES_SCHEMA},
    )
    assert created.status_code == 201, created.text
    source = create_source(gw, GITHUB, validate=True)
    assert source["validate"] is True
    assert gw.api.get(f"/v1/sources/{source['id']}").json()["validate"] is True
    make_endpoint(gw, receiver.url(path), source_ids=[source["id"]])

    refused = post_in(gw, source, *_request("secret-looking-value-7"))
    assert refused.status_code == 400, refused.text
    assert "data.issue.number" in refused.json()["detail"]
    assert events(gw, source_id=source["id"]) == []

    def logged() -> list[dict[str, Any]] | None:
        found = gw.api.get(f"/v1/sources/{source['id']}/refusals").json()["data"]
        return found or None

    [refusal] = wait_until(logged, 15, "the refusal in the log")
    assert refusal["reason"] == "invalid_data"
    assert "data.issue.number" in refusal["message"] and "type" in refusal["message"]
    assert "secret-looking-value-7" not in refusal["message"]

    # Valid data goes through and arrives.
    event_id = accepted(post_in(gw, source, *_request(7)))
    [request] = receiver.wait_for(path, 1)
    assert json.loads(request.body)["id"] == event_id

    # Without validate, the same invalid request is taken as it is.
    patched = gw.api.patch(f"/v1/sources/{source['id']}", json={"validate": False})
    assert patched.status_code == 200 and patched.json()["validate"] is False
    accepted(post_in(gw, source, *_request("not a number")))
    null = gw.api.patch(f"/v1/sources/{source['id']}", json={"validate": None})
    assert null.status_code == 422 and null.json()["detail"][0]["loc"] == ["body", "validate"]


def test_sources_do_not_validate_unless_asked(gw: Gateway) -> None:
    gw.api.post("/v1/event-types", json={"name": "issues.opened", "schema": ISSUES_SCHEMA})
    source = create_source(gw, GITHUB)
    assert source["validate"] is False
    accepted(post_in(gw, source, *_request("not a number")))


def test_what_a_source_transformation_makes_is_what_is_checked(gw: Gateway) -> None:
    """The transformation maps the provider's shape into a catalogued type first."""
    created = gw.api.post(
        "/v1/event-types",
        json={
            "name": "tracker.issue",
            "schema": {
                "type": "object",
                "properties": {"number": {"type": "integer"}},
                "required": ["number"],
                "additionalProperties": False,
            },
        },
    )
    assert created.status_code == 201, created.text
    code = (
        "function handler(webhook) {"
        ' webhook.event_type = "tracker.issue";'
        " webhook.payload = { number: webhook.payload.issue.number };"
        " return webhook; }"
    )
    source = create_source(gw, GITHUB, validate=True, transformation=code)
    event_id = accepted(post_in(gw, source, *_request(7)))
    stored = gw.api.get(f"/v1/events/{event_id}").json()
    assert stored["type"] == "tracker.issue" and stored["data"] == {"number": 7}
    refused = post_in(gw, source, *_request("seven"))
    assert refused.status_code == 400, refused.text
    assert "data.number" in refused.json()["detail"]
    assert len(events(gw, source_id=source["id"])) == 1
