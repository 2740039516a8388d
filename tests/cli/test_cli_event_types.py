"""`gateway event-types list|import` against the running gateway's database, checked
through the API, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_commands import as_json, ok, refused
from tests.support.gateway import Gateway
from tests.support.receiver import wait_until

DOCUMENT = {
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
                            "example": {"order": "o_1"},
                        }
                    }
                },
            }
        }
    },
    "components": {
        "schemas": {"Order": {"type": "object", "required": ["order"]}},
    },
}


def test_import_then_list(gw: Gateway, tmp_path: Path) -> None:
    file = tmp_path / "webhooks.json"
    file.write_text(json.dumps(DOCUMENT))
    imported = ok(gw.run_cli("event-types", "import", str(file)))
    assert "created order.paid" in imported.stdout
    assert gw.api.get("/v1/event-types/order.paid").json()["examples"] == [{"order": "o_1"}]

    table = ok(gw.run_cli("event-types", "list")).stdout
    assert "order.paid" in table and "An order was paid." in table
    listed = as_json(gw, "event-types", "list")
    assert [t["name"] for t in listed["data"]] == ["order.paid"]
    assert listed["data"][0]["schema"]["$ref"] == "#/$defs/Order"
    gw.api.delete("/v1/event-types/order.paid")
    assert as_json(gw, "event-types", "list")["data"] == []
    assert len(as_json(gw, "event-types", "list", "--archived")["data"]) == 1
    # Again: updated, and back from the archive.
    assert "updated order.paid" in ok(gw.run_cli("event-types", "import", str(file))).stdout
    assert gw.api.get("/v1/event-types/order.paid").json()["archived"] is False


def test_import_refuses_a_bad_document_and_changes_nothing(gw: Gateway, tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text("{not json")
    refused(gw.run_cli("event-types", "import", str(file)), 2, "not a JSON document")
    file.write_text(json.dumps({**DOCUMENT, "openapi": "3.0.0"}))
    refused(gw.run_cli("event-types", "import", str(file)), 2, "openapi")
    bad_example = json.loads(json.dumps(DOCUMENT))
    media = bad_example["webhooks"]["order.paid"]["post"]["requestBody"]["content"]
    media["application/json"]["example"] = {"other": 1}
    file.write_text(json.dumps(bad_example))
    refused(gw.run_cli("event-types", "import", str(file)), 2, "example 0")
    assert gw.api.get("/v1/event-types").json()["data"] == []


def test_a_type_imported_by_another_process_applies_within_seconds(
    gw: Gateway, tmp_path: Path
) -> None:
    """The API process keeps what it read of a type for 2 s: a change made elsewhere (the
    CLI, another API process) reaches its publishes within that, without a restart."""
    bad = {"type": "order.paid", "data": {"no": "order"}}
    assert gw.api.post("/v1/events", json=bad).status_code == 202  # not catalogued yet
    file = tmp_path / "webhooks.json"
    file.write_text(json.dumps(DOCUMENT))
    ok(gw.run_cli_process("event-types", "import", str(file)))
    wait_until(
        lambda: gw.api.post("/v1/events", json=bad).status_code == 422,
        10,
        "the imported schema to apply to publishes",
    )
    gw.api.delete("/v1/event-types/order.paid")
