"""The console's API keys: listed with where the bootstrap key comes from, created with
the key shown once, revoked after a confirmation (which ends its console sessions)."""

from __future__ import annotations

import re
from typing import Any

from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import client_with, create_key
from tests.support.receiver import wait_until


def _key_count(gw: Gateway) -> int:
    return int(gw.sql("SELECT count(*) FROM api_key")[0][0])  # type: ignore[call-overload]


def test_create_a_key_shown_once_then_revoke_it(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    sign_in(page, gw, then="/keys")
    assert page.find_element(By.ID, "bootstrap-key").text.startswith(
        "bootstrap admin key: configured by GATEWAY_API_KEY"
    )
    page.find_element(By.ID, "key-name").send_keys("billing service")
    page.find_element(By.ID, "key-tenant").send_keys("acme")
    page.find_element(By.ID, "key-rate").send_keys("50")
    page.find_element(By.CSS_SELECTOR, "#create-key button[type=submit]").click()
    shown = wait_until(lambda: page.find_elements(By.ID, "new-key"), 10, "the new key")[0].text
    assert shown.startswith("gw_") and len(shown) > 30
    assert shown not in page.current_url
    assert page.find_element(By.CSS_SELECTOR, "button[data-copy=new-key]").text == "Copy"

    # The key works (a tenant session of its own), and is never shown again.
    tenant, _csrf = signed_in_client(gw, shown)
    assert tenant.get("/console").status_code == 200
    page.find_element(By.LINK_TEXT, "Done").click()
    wait_until(lambda: page.find_elements(By.ID, "keys"), 10, "the list")
    assert shown not in page.page_source
    row = page.find_element(By.XPATH, "//table[@id='keys']//tr[td[1]='billing service']")
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == shown[:10] + "…" and cells[2] == "acme" and cells[3] == "50"

    # Revoke: a confirmation page first, then the key and its sessions end.
    row.find_element(By.LINK_TEXT, "Revoke…").click()
    wait_until(lambda: page.find_elements(By.ID, "confirm-revoke"), 10, "the confirmation")
    assert "billing service" in page.find_element(By.TAG_NAME, "h1").text
    page.find_element(By.ID, "confirm-revoke").click()
    wait_until(lambda: page.find_elements(By.ID, "revoked"), 10, "the revoked notice")
    row = page.find_element(By.XPATH, "//table[@id='keys']//tr[td[1]='billing service']")
    assert row.find_elements(By.TAG_NAME, "td")[5].text.endswith("Z")
    assert row.find_elements(By.LINK_TEXT, "Revoke…") == []
    ended = tenant.get("/console")
    assert ended.status_code == 303 and "/console/login" in ended.headers["location"]
    with client_with(gw, shown) as api:
        assert api.get("/v1/events").status_code == 401


def test_the_form_names_what_is_wrong_and_creates_nothing(gw: Gateway) -> None:
    client, csrf = signed_in_client(gw)
    before = _key_count(gw)
    answer = client.post(
        "/console/keys",
        data={"csrf_token": csrf, "name": "", "tenant_id": "", "rate_limit": "fast"},
    )
    assert answer.status_code == 422
    name_error = re.search(r'id="key-name-error">([^<]+)<', answer.text)
    rate_error = re.search(r'id="key-rate-error">([^<]+)<', answer.text)
    assert name_error and "at least 1" in name_error[1]  # the API's own message
    assert rate_error and "integer" in rate_error[1]
    assert 'value="fast"' in answer.text  # what was typed stays
    too_low = client.post(
        "/console/keys", data={"csrf_token": csrf, "name": "x", "rate_limit": "0"}
    )
    assert too_low.status_code == 422 and "greater than 0" in too_low.text
    assert _key_count(gw) == before


def test_without_csrf_or_as_a_tenant_nothing_changes(gw: Gateway) -> None:
    victim = create_key(gw, name="keep me")
    client, _csrf = signed_in_client(gw)
    before = _key_count(gw)
    for forged in ({}, {"csrf_token": "forged"}):
        assert client.post("/console/keys", data={"name": "sneaky", **forged}).status_code == 403
        assert client.post(f"/console/keys/{victim['id']}/revoke", data=forged).status_code == 403
    assert _key_count(gw) == before
    with client_with(gw, victim["key"]) as api:
        assert api.get("/v1/events").status_code == 200

    tenant_key = create_key(gw, name="acme", tenant_id="acme")["key"]
    tenant, csrf = signed_in_client(gw, tenant_key)
    assert tenant.get("/console/keys").status_code == 403
    made = tenant.post("/console/keys", data={"csrf_token": csrf, "name": "mine now"})
    assert made.status_code == 403
    revoked = tenant.post(f"/console/keys/{victim['id']}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 403
    assert _key_count(gw) == before + 1
    assert client.get("/console/keys/key_unknown/revoke").status_code == 404


def test_revoking_the_key_signed_in_with_signs_out(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    own = create_key(gw, name="my own")
    sign_in(page, gw, own["key"], then=f"/keys/{own['id']}/revoke")
    assert "You are signed in with it" in page.find_element(By.TAG_NAME, "main").text
    page.find_element(By.ID, "confirm-revoke").click()
    wait_until(lambda: "/console/login" in page.current_url, 10, "the sign-in page")
    page.get(console_url(gw, "/keys"))
    assert "/console/login" in page.current_url
