"""The console's portal links page: an admin makes a link (shown once) and revokes a
tenant's links; a tenant's key may do neither."""

from __future__ import annotations

from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

from tests.support.browser import HOST
from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import create_key
from tests.support.receiver import wait_until


def test_an_admin_makes_a_link_opens_it_and_revokes_it(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(page, gw, then="/portal-links")
    assert page.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == "Portal links"
    page.find_element(By.ID, "tenant_id").send_keys("acme")
    Select(page.find_element(By.ID, "expires_in")).select_by_visible_text("1 day")
    page.find_element(By.ID, "create-link").submit()
    field = wait_until(lambda: page.find_elements(By.ID, "portal-link"), 10, "the link")
    url = field[0].get_attribute("value")
    parts = urlsplit(url)
    assert parts.path == "/portal/enter" and parts.query.startswith("token=")
    assert parts.query not in page.current_url  # shown in the page, not in its address

    page.get(f"http://{HOST}:{gw.port}{parts.path}?{parts.query}")
    tenant = wait_until(lambda: page.find_elements(By.ID, "portal-tenant"), 10, "the portal")
    assert tenant[0].text == "acme"

    page.get(console_url(gw, "/portal-links"))
    page.find_element(By.ID, "revoke_tenant_id").send_keys("acme")
    page.execute_script("document.getElementById('revoke-links').removeAttribute('data-confirm')")
    page.find_element(By.ID, "revoke-links").submit()
    wait_until(lambda: page.find_elements(By.ID, "revoked"), 10, "the revocation")
    page.get(f"http://{HOST}:{gw.port}/portal")
    assert "revoked" in page.find_element(By.ID, "portal-message").text


def test_the_form_shows_the_apis_messages(gw: Gateway) -> None:
    client, csrf = signed_in_client(gw)
    with closing(client):
        answer = client.post(
            "/console/portal-links",
            data={"csrf_token": csrf, "tenant_id": "acme", "expires_in": "604801"},
        )
        assert answer.status_code == 422
        assert "less than or equal to 604800" in answer.text
        assert "/portal/enter" not in answer.text
        refused = client.post(
            "/console/portal-links", data={"tenant_id": "acme", "expires_in": "3600"}
        )
        assert refused.status_code == 403 and "/portal/enter" not in refused.text


def test_a_tenant_key_can_neither_make_nor_revoke_links(gw: Gateway) -> None:
    key = create_key(gw, name="acme console", tenant_id="acme")["key"]
    client, csrf = signed_in_client(gw, key)
    with closing(client):
        assert "Portal links" not in client.get("/console").text
        assert client.get("/console/portal-links").status_code == 403
        made = client.post(
            "/console/portal-links",
            data={"csrf_token": csrf, "tenant_id": "acme", "expires_in": "3600"},
        )
        assert made.status_code == 403 and "/portal/enter" not in made.text
        revoked = client.post(
            "/console/portal-links/revoke", data={"csrf_token": csrf, "revoke_tenant_id": "acme"}
        )
        assert revoked.status_code == 403
    assert gw.sql("SELECT count(*) FROM portal_revocation") == [(0,)]
