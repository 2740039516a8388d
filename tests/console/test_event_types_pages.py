"""The event-type catalogue in the console (list and detail, for every signed-in key) and
in the tenant portal (the catalogue when there is one, else the types seen)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.test_portal import portal_client, portal_link
from tests.support.console import sign_in, signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import create_key, make_endpoint, publish
from tests.support.receiver import Receiver, wait_until

pytestmark = pytest.mark.usefixtures("forget_event_types")


SCHEMA = {
    "type": "object",
    "properties": {"invoice": {"type": "string"}, "amount": {"type": "integer"}},
    "required": ["invoice"],
}


def _create(gw: Gateway, name: str, **fields: Any) -> None:
    body = {"name": name, "schema": SCHEMA, "examples": [{"invoice": "in_1"}], **fields}
    answer = gw.api.post("/v1/event-types", json=body)
    assert answer.status_code == 201, answer.text


def test_the_catalogue_and_a_type_with_its_schema_and_examples(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    _create(gw, "invoice.paid", description="Paid in full <script>alert(1)</script>")
    _create(gw, "invoice.voided", deprecated=True)
    _create(gw, "invoice.old")
    gw.api.delete("/v1/event-types/invoice.old")

    sign_in(page, gw, then="/event-types")
    rows = page.find_elements(By.CSS_SELECTOR, "#event-types tbody tr")
    assert [r.text.split()[0] for r in rows] == ["invoice.paid", "invoice.voided"]
    assert "deprecated" in rows[1].text
    page.find_element(By.LINK_TEXT, "Show archived types too").click()
    wait_until(lambda: "archived=true" in page.current_url, 10, "the archived types")
    rows = page.find_elements(By.CSS_SELECTOR, "#event-types tbody tr")
    assert "archived" in rows[0].text and rows[0].text.startswith("invoice.old")

    page.find_element(By.LINK_TEXT, "invoice.paid").click()
    wait_until(lambda: page.current_url.endswith("/invoice.paid"), 10, "the type's page")
    fields = page.find_element(By.ID, "event-type-fields").text
    # Shown as text, never run.
    assert "<script>alert(1)</script>" in fields and "invoice" in fields
    assert '"required": [' in page.find_element(By.ID, "event-type-schema").text
    [example] = page.find_elements(By.CSS_SELECTOR, ".event-type-example")
    assert '"invoice": "in_1"' in example.text


def test_a_tenant_key_reads_the_catalogue_and_unknown_types_are_404(gw: Gateway) -> None:
    _create(gw, "invoice.paid")
    key = create_key(gw, name="acme", tenant_id="acme")["key"]
    tenant, _csrf = signed_in_client(gw, key)
    listed = tenant.get("/console/event-types")
    assert listed.status_code == 200 and "invoice.paid" in listed.text
    assert tenant.get("/console/event-types/invoice.paid").status_code == 200
    assert tenant.get("/console/event-types/nope.nope").status_code == 404
    assert tenant.get("/console/event-types/bad%20name").status_code == 404


def test_the_portal_shows_the_catalogue_when_there_is_one(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path), tenant_id="acme")
    publish(gw, "seen.type", {"n": 1}, tenant_id="acme")
    client, _csrf = portal_client(gw, portal_link(gw, "acme"))
    seen = client.get("/portal/event-types").text
    assert 'id="event-types"' in seen and "seen.type" in seen

    _create(gw, "invoice.paid", description="Paid in full")
    _create(gw, "invoice.old")
    gw.api.delete("/v1/event-types/invoice.old")
    shown = client.get("/portal/event-types").text
    assert 'id="event-type-catalogue"' in shown
    assert "invoice.paid" in shown and "Paid in full" in shown and "&#34;required&#34;" in shown
    assert "invoice.old" not in shown and "seen.type" not in shown
