"""The event-type catalogue (`/v1/event-types`): CRUD, schemas checked on save and on
publish (422 naming the path and the rule, nothing stored), archiving, the OpenAPI
import, strict mode, and what a tenant's key may do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dns import ScriptedDNS
from tests.support.gateway import BACKENDS, Gateway, own_gateway
from tests.support.helpers import (
    client_with,
    create_key,
    error_locations,
    make_endpoint,
    publish,
)
from tests.support.receiver import Receiver

pytestmark = pytest.mark.usefixtures("forget_event_types")


ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order": {"type": "string"},
        "amount": {"type": "integer", "minimum": 0},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string", "minLength": 3}},
                "required": ["sku"],
            },
        },
    },
    "required": ["order", "amount"],
}
ORDER = {"order": "ord_1", "amount": 1200, "items": [{"sku": "abc"}]}


def create_type(gw: Gateway, name: str = "order.paid", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "schema": ORDER_SCHEMA, "examples": [ORDER], **fields}
    response = gw.api.post("/v1/event-types", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def problem(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    return detail  # type: ignore[no-any-return]


def event_count(gw: Gateway) -> int:
    return int(gw.sql("SELECT count(*) FROM event")[0][0])  # type: ignore[call-overload]


# create, read, change


def test_create_get_and_list(gw: Gateway) -> None:
    created = create_type(gw, description="An order was paid.")
    assert created["name"] == "order.paid"
    assert created["group"] == "order"
    assert created["schema"] == ORDER_SCHEMA
    assert created["examples"] == [ORDER]
    assert created["deprecated"] is False
    assert created["archived"] is False and created["archived_at"] is None
    assert gw.api.get("/v1/event-types/order.paid").json() == created
    create_type(gw, "ping", schema=None, examples=[])
    assert gw.api.get("/v1/event-types/ping").json()["group"] is None
    listed = gw.api.get("/v1/event-types").json()
    assert [t["name"] for t in listed["data"]] == ["order.paid", "ping"]
    assert listed["next_cursor"] is None


def test_list_pages_by_name(gw: Gateway) -> None:
    for name in ("c.x", "a.x", "b.x"):
        create_type(gw, name)
    first = gw.api.get("/v1/event-types", params={"limit": 2}).json()
    assert [t["name"] for t in first["data"]] == ["a.x", "b.x"]
    assert first["next_cursor"] == "b.x"
    rest = gw.api.get("/v1/event-types", params={"limit": 2, "cursor": "b.x"}).json()
    assert [t["name"] for t in rest["data"]] == ["c.x"]
    assert rest["next_cursor"] is None


def test_duplicate_name_is_409_and_unknown_is_404(gw: Gateway) -> None:
    create_type(gw)
    response = gw.api.post("/v1/event-types", json={"name": "order.paid"})
    assert response.status_code == 409, response.text
    assert gw.api.get("/v1/event-types/nope.nope").status_code == 404
    assert gw.api.patch("/v1/event-types/nope.nope", json={}).status_code == 404
    assert gw.api.delete("/v1/event-types/nope.nope").status_code == 404


def test_patch_changes_only_what_is_sent(gw: Gateway) -> None:
    create_type(gw, description="old")
    response = gw.api.patch(
        "/v1/event-types/order.paid", json={"description": "new", "deprecated": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "new" and body["deprecated"] is True
    assert body["schema"] == ORDER_SCHEMA and body["examples"] == [ORDER]
    # A schema the examples no longer meet is refused, naming the example.
    stricter = {**ORDER_SCHEMA, "required": ["order", "amount", "currency"]}
    detail = problem(gw.api.patch("/v1/event-types/order.paid", json={"schema": stricter}))
    assert detail["loc"] == ["body", "examples", 0]
    assert "currency" in detail["msg"] and "required" in detail["msg"]
    assert gw.api.get("/v1/event-types/order.paid").json()["schema"] == ORDER_SCHEMA
    # With new examples in the same request, it is taken.
    both = {"schema": stricter, "examples": [{**ORDER, "currency": "EUR"}]}
    assert gw.api.patch("/v1/event-types/order.paid", json=both).status_code == 200


# refused on save


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"name": "bad name!"}, ["body", "name"], "pattern"),
        ({"name": "a.b", "schema": {"type": "nonsense"}}, ["body", "schema"], "schema.type"),
        ({"name": "a.b", "schema": {"pattern": "(unclosed"}}, ["body", "schema"], "regex"),
        (
            {"name": "a.b", "schema": {"$ref": "https://example.com/schema.json"}},
            ["body", "schema"],
            "example.com",
        ),
        (
            {"name": "a.b", "schema": ORDER_SCHEMA, "examples": [ORDER, {"order": "x"}]},
            ["body", "examples", 1],
            "amount",
        ),
        (
            {"name": "a.b", "schema": ORDER_SCHEMA, "examples": [{**ORDER, "amount": -1}]},
            ["body", "examples", 0, "amount"],
            "rule: minimum",
        ),
        ({"name": "a.b", "examples": ["not an object"]}, ["body", "examples", 0], ""),
        ({"name": "a.b", "surprise": 1}, ["body", "surprise"], ""),
    ],
)
def test_bad_types_are_422_naming_the_problem_and_store_nothing(
    gw: Gateway, body: dict[str, Any], loc: list[Any], words: str
) -> None:
    response = gw.api.post("/v1/event-types", json=body)
    assert response.status_code == 422, response.text
    assert loc in error_locations(response), response.text
    assert words in response.text
    assert gw.api.get("/v1/event-types", params={"include_archived": True}).json()["data"] == []


# publishing


def test_publish_checks_data_and_names_path_and_rule(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path), event_types=["order.*"])
    create_type(gw)
    detail = problem(
        gw.api.post(
            "/v1/events",
            json={"type": "order.paid", "data": {**ORDER, "items": [{"sku": "ab"}]}},
        )
    )
    assert detail["loc"] == ["body", "data", "items", 0, "sku"]
    assert "data.items[0].sku" in detail["msg"] and "rule: minLength" in detail["msg"]
    detail = problem(gw.api.post("/v1/events", json={"type": "order.paid", "data": {"x": 1}}))
    assert detail["loc"] == ["body", "data"]
    assert "rule: required" in detail["msg"]
    assert event_count(gw) == 0
    # Valid data, and types outside the catalogue (open mode), are published.
    assert publish(gw, "order.paid", ORDER)["deliveries"] == 1
    assert publish(gw, "order.unlisted", {"anything": True})["deliveries"] == 1
    assert event_count(gw) == 2


def test_a_changed_schema_applies_to_the_next_publish(gw: Gateway) -> None:
    create_type(gw)
    publish(gw, "order.paid", {"order": "o", "amount": 5})
    gw.api.patch(
        "/v1/event-types/order.paid",
        json={"schema": {**ORDER_SCHEMA, "required": ["order", "amount", "note"]}, "examples": []},
    )
    response = gw.api.post(
        "/v1/events", json={"type": "order.paid", "data": {"order": "o", "amount": 5}}
    )
    assert "note" in problem(response)["msg"]
    gw.api.patch("/v1/event-types/order.paid", json={"schema": None})
    publish(gw, "order.paid", {"whatever": 1})


def test_an_idempotent_repeat_answers_the_first_event(gw: Gateway) -> None:
    create_type(gw)
    headers = {"Idempotency-Key": "k1"}
    body = {"type": "order.paid", "data": ORDER}
    first = gw.api.post("/v1/events", json=body, headers=headers)
    assert first.status_code == 202, first.text
    bad = {"type": "order.paid", "data": {"order": 1}}
    assert gw.api.post("/v1/events", json=bad, headers={"Idempotency-Key": "k2"}).status_code == 422
    again = gw.api.post("/v1/events", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


# archiving


def test_archived_types_are_hidden_and_refused_in_subscriptions(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    create_type(gw)
    create_type(gw, "order.shipped")
    kept = make_endpoint(gw, receiver.url(path), event_types=["order.paid"])
    response = gw.api.delete("/v1/event-types/order.paid")
    assert response.status_code == 200, response.text
    assert response.json()["archived"] is True
    assert [t["name"] for t in gw.api.get("/v1/event-types").json()["data"]] == ["order.shipped"]
    every = gw.api.get("/v1/event-types", params={"include_archived": "true"}).json()["data"]
    assert [t["name"] for t in every] == ["order.paid", "order.shipped"]
    assert gw.api.get("/v1/event-types/order.paid").json()["archived"] is True

    refused = gw.api.post(
        "/v1/endpoints", json={"url": receiver.url(path), "event_types": ["order.paid"]}
    )
    assert ["body", "event_types"] in error_locations(refused)
    assert "order.paid" in refused.text and "archived" in refused.text
    patched = gw.api.patch(
        f"/v1/endpoints/{kept['id']}", json={"event_types": ["order.shipped", "order.paid"]}
    )
    assert patched.status_code == 422 and "order.paid" in patched.text
    # Prefixes are not types; an endpoint that had the type keeps it.
    make_endpoint(gw, receiver.url(path), event_types=["order.*"])
    assert gw.api.get(f"/v1/endpoints/{kept['id']}").json()["event_types"] == ["order.paid"]
    # No longer checked in open mode; PATCH brings it back.
    publish(gw, "order.paid", {"not": "an order"})
    back = gw.api.patch("/v1/event-types/order.paid", json={"archived": False})
    assert back.json()["archived"] is False
    make_endpoint(gw, receiver.url(path), event_types=["order.paid"])
    assert gw.api.post("/v1/events", json={"type": "order.paid", "data": {}}).status_code == 422


# import


def test_import_an_openapi_document(gw: Gateway) -> None:
    create_type(gw, "order.paid", description="before", schema=None, examples=[])
    gw.api.delete("/v1/event-types/order.paid")
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Shop", "version": "1"},
        "webhooks": {
            "order.paid": {
                "post": {
                    "summary": "An order was paid.",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Order"},
                                "examples": {"one": {"$ref": "#/components/examples/Paid"}},
                            }
                        }
                    },
                }
            },
            # A whole payload, as the gateway's own document describes one: its data.
            "order.refunded": {
                "post": {
                    "deprecated": True,
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "type": {"const": "order.refunded"},
                                        "data": {"$ref": "#/components/schemas/Order"},
                                    },
                                },
                                "example": {"type": "order.refunded", "data": ORDER},
                            }
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Order": {
                    "type": "object",
                    "properties": {
                        "order": {"type": "string"},
                        "amount": {"type": "integer"},
                        "parent": {"$ref": "#/components/schemas/Order"},
                    },
                    "required": ["order"],
                }
            },
            "examples": {"Paid": {"value": ORDER}},
        },
    }
    response = gw.api.post("/v1/event-types/import", json=document)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": ["order.refunded"], "updated": ["order.paid"]}
    paid = gw.api.get("/v1/event-types/order.paid").json()
    assert paid["description"] == "An order was paid."
    assert paid["archived"] is False
    assert paid["examples"] == [ORDER]
    assert paid["schema"]["$ref"] == "#/$defs/Order"
    refunded = gw.api.get("/v1/event-types/order.refunded").json()
    assert refunded["deprecated"] is True and refunded["examples"] == [ORDER]
    # The recursive schema works: a nested order must have its own `order`.
    nested = {"order": "o", "parent": {"amount": 1}}
    detail = problem(gw.api.post("/v1/events", json={"type": "order.paid", "data": nested}))
    assert detail["loc"] == ["body", "data", "parent"]


@pytest.mark.parametrize(
    ("webhooks", "words"),
    [
        ({"bad name": {"post": {}}}, "bad name"),
        ({"a.b": {"get": {}}}, "no post"),
        (
            {
                "a.b": {
                    "post": {
                        "requestBody": {
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/X"}}
                            }
                        }
                    }
                }
            },
            "components.schemas",
        ),
        (
            {
                "a.b": {
                    "post": {
                        "requestBody": {
                            "content": {
                                "application/json": {
                                    "schema": {"type": "object", "required": ["x"]},
                                    "example": {"y": 1},
                                }
                            }
                        }
                    }
                }
            },
            "example 0",
        ),
    ],
)
def test_import_refuses_what_it_cannot_read_and_imports_nothing(
    gw: Gateway, webhooks: dict[str, Any], words: str
) -> None:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "webhooks": {"first.ok": {"post": {}}, **webhooks},
    }
    response = gw.api.post("/v1/event-types/import", json=document)
    assert response.status_code == 422, response.text
    assert words in response.text
    assert gw.api.get("/v1/event-types").json()["data"] == []


def test_import_needs_openapi_3_1(gw: Gateway) -> None:
    response = gw.api.post(
        "/v1/event-types/import", json={"openapi": "3.0.3", "webhooks": {"a": {"post": {}}}}
    )
    assert ["body", "openapi"] in error_locations(response)


# who may do what


def test_a_tenant_key_reads_the_catalogue_but_cannot_change_it(gw: Gateway) -> None:
    create_type(gw)
    tenant = client_with(gw, create_key(gw, tenant_id="acme")["key"])
    assert tenant.get("/v1/event-types").json()["data"][0]["name"] == "order.paid"
    assert tenant.get("/v1/event-types/order.paid").status_code == 200
    assert tenant.post("/v1/event-types", json={"name": "x.y"}).status_code == 403
    assert tenant.patch("/v1/event-types/order.paid", json={}).status_code == 403
    assert tenant.delete("/v1/event-types/order.paid").status_code == 403
    document = {"openapi": "3.1.0", "webhooks": {"x.y": {"post": {}}}}
    assert tenant.post("/v1/event-types/import", json=document).status_code == 403
    # Its publishes are checked like anyone's.
    refused = tenant.post("/v1/events", json={"type": "order.paid", "data": {}})
    assert refused.status_code == 422
    assert gw.api.get("/v1/event-types/order.paid").json()["archived"] is False


# strict mode


@pytest.fixture(scope="module", params=BACKENDS)
def strict_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> Iterator[Gateway]:
    workdir: Path = tmp_path_factory.mktemp(f"strict-{request.param}")
    with own_gateway(request.param, workdir, dns, GATEWAY_EVENT_TYPES="strict") as gateway:
        yield gateway


def test_strict_mode_refuses_types_outside_the_catalogue(
    strict_gateway: Gateway, receiver: Receiver, path: str
) -> None:
    gw = strict_gateway
    gw.reset()
    endpoint = make_endpoint(gw, receiver.url(path))
    unknown = problem(gw.api.post("/v1/events", json={"type": "order.paid", "data": ORDER}))
    assert unknown["loc"] == ["body", "type"]
    assert "not in the event-type catalogue" in unknown["msg"]
    create_type(gw)
    assert publish(gw, "order.paid", ORDER)["deliveries"] == 1
    # In a batch, per event: one outside the catalogue refuses the whole batch.
    events = [{"type": "order.paid", "data": ORDER}, {"type": "order.other", "data": ORDER}]
    refused = problem(gw.api.post("/v1/events/batch", json={"events": events}))
    assert refused["loc"] == ["body", "events", 1, "type"]
    assert "not in the event-type catalogue" in refused["msg"]
    gw.api.delete("/v1/event-types/order.paid")
    archived = problem(gw.api.post("/v1/events", json={"type": "order.paid", "data": ORDER}))
    assert "archived" in archived["msg"]
    assert event_count(gw) == 1
    # The gateway's own test event is not a catalogued type, and still goes.
    test = gw.api.post(f"/v1/endpoints/{endpoint['id']}/test")
    assert test.status_code == 202, test.text


# /docs


def test_the_openapi_document_has_a_webhook_per_catalogued_type(gw: Gateway) -> None:
    import jsonschema_rs

    recursive = {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    }
    create_type(gw, description="An order was paid.")
    create_type(gw, "tree.grown", schema=recursive, examples=[{"next": {"next": {}}}])
    create_type(gw, "order.old", deprecated=True)
    create_type(gw, "order.gone")
    gw.api.delete("/v1/event-types/order.gone")
    document = gw.api.get("/openapi.json").json()
    webhooks = document["webhooks"]
    assert {"event", "order.paid", "tree.grown", "order.old"} <= set(webhooks)
    assert "order.gone" not in webhooks
    operation = webhooks["order.paid"]["post"]
    assert operation["description"] == "An order was paid."
    assert webhooks["order.old"]["post"]["deprecated"] is True
    assert [p["name"] for p in operation["parameters"]] == [
        p["name"] for p in webhooks["event"]["post"]["parameters"]
    ]
    for name in ("order.paid", "tree.grown"):
        media = webhooks[name]["post"]["requestBody"]["content"]["application/json"]
        validator = jsonschema_rs.Draft202012Validator(
            {**media["schema"], "components": document["components"]}
        )
        example = media["example"]
        assert example["type"] == name
        assert validator.is_valid(example), list(validator.iter_errors(example))
        assert not validator.is_valid({**example, "type": "other.type"})
    tree = document["components"]["schemas"]["data.tree.grown"]
    assert tree["$ref"] == "#/components/schemas/data.tree.grown/$defs/node"
    bad_tree = {**media["example"], "data": {"next": {"next": 5}}}
    assert not validator.is_valid(bad_tree)
