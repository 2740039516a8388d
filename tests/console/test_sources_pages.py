"""The console's sources: the ingest URL to give a provider, what came in, what was
refused and why; the operator's alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.dns import ScriptedDNS
from tests.support.gateway import Gateway, own_gateway
from tests.support.helpers import create_key
from tests.support.providers import CASE_BY_PROVIDER, accepted, create_source, post_in
from tests.support.receiver import wait_until


def test_a_source_shows_its_ingest_url_what_came_in_and_what_was_refused(
    page: Any, gw: Gateway
) -> None:
    from selenium.webdriver.common.by import By

    case = CASE_BY_PROVIDER["stripe"]
    source = create_source(gw, case, name="Stripe payments")
    body, headers = case.signed(case.new_id())
    event_id = accepted(post_in(gw, source, body, headers))
    forged, forged_headers = case.signed(case.new_id(), secret=case.wrong_secret)
    assert post_in(gw, source, forged, forged_headers).status_code == 401

    sign_in(page, gw, then="/sources")
    rows = page.find_elements(By.CSS_SELECTOR, "#sources tbody tr")
    assert len(rows) == 1 and "Stripe payments" in rows[0].text and "stripe" in rows[0].text
    page.find_element(By.LINK_TEXT, source["id"]).click()
    wait_until(lambda: page.current_url.endswith(source["id"]), 10, "the source's page")

    # The absolute URL, built from the request (no GATEWAY_PUBLIC_URL), with a copy button.
    url = page.find_element(By.ID, "ingest-url").text
    assert url == console_url(gw).replace("/console", source["ingest_path"])
    copy = page.find_element(By.CSS_SELECTOR, "button[data-copy=ingest-url]")
    assert copy.text == "Copy"
    # Settings, never the secret.
    assert "stripe" in page.find_element(By.ID, "source-settings").text
    assert case.secret not in page.page_source
    # What came in, linked to the event.
    assert event_id in page.find_element(By.ID, "source-events").text

    # The refused request, with its reason (recorded off the request's path: poll).
    def refusal() -> str:
        page.refresh()
        found = page.find_elements(By.CSS_SELECTOR, "#refusal-list .refusal-reason")
        return str(found[0].text) if found else ""

    reason = wait_until(refusal, 20, "the refused request on the page")
    assert "bad_signature" in reason
    assert "whsec" not in page.find_element(By.ID, "refusals").text


def test_sources_are_the_operators_and_unknown_ids_are_404(gw: Gateway) -> None:
    source = create_source(gw, CASE_BY_PROVIDER["github"])
    key = create_key(gw, name="acme", tenant_id="acme")["key"]
    tenant, _csrf = signed_in_client(gw, key)
    for url in ("/console/sources", f"/console/sources/{source['id']}"):
        answer = tenant.get(url)
        assert answer.status_code == 403 and "Not allowed" in answer.text
        assert source["id"] not in answer.text
    admin, _csrf = signed_in_client(gw)
    assert admin.get("/console/sources/src_nothing_here").status_code == 404
    assert admin.get("/console/sources/bad%20id").status_code == 404
    assert "No request was refused recently." in admin.get(f"/console/sources/{source['id']}").text


@pytest.fixture
def public_gateway(tmp_path: Path, dns: ScriptedDNS) -> Any:
    with own_gateway(
        "sqlite", tmp_path, dns, GATEWAY_PUBLIC_URL="http://hooks.example.com:8080/"
    ) as gateway:
        yield gateway


def test_the_ingest_url_is_on_the_public_url_when_set(public_gateway: Gateway) -> None:
    # http: an https public URL makes the session cookie Secure, which this plain-http
    # client would not send back.
    source = create_source(public_gateway, CASE_BY_PROVIDER["github"])
    client, _csrf = signed_in_client(public_gateway)
    page = client.get(f"/console/sources/{source['id']}")
    assert f"http://hooks.example.com:8080/in/{source['id']}</code>" in page.text
