"""Signing in to the console: an API key once, then a session that ends when it should."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.dns import ScriptedDNS
from tests.support.gateway import API_KEY, Gateway, own_gateway
from tests.support.helpers import create_key, publish
from tests.support.receiver import wait_until


def test_sign_in_see_the_overview_and_sign_out(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    event = publish(gw, "invoice.paid")
    page.get(console_url(gw))
    assert "/console/login" in page.current_url  # signed out: sent to sign in
    label = page.find_element(By.CSS_SELECTOR, "label[for=api_key]")
    assert label.text == "API key"

    sign_in(page, gw)
    assert page.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert event["id"] in page.find_element(By.TAG_NAME, "main").text

    page.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_until(lambda: "/console/login" in page.current_url, 10, "the sign-in page")
    page.get(console_url(gw))
    assert "/console/login" in page.current_url


def test_a_wrong_key_is_refused_with_a_message(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    page.get(console_url(gw, "/login"))
    field = page.find_element(By.ID, "api_key")
    field.send_keys("gw_not-a-key")
    field.submit()
    alert = wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "[role=alert]"), 10, "alert")
    assert alert[0].text == "That API key is not valid."
    page.get(console_url(gw))
    assert "/console/login" in page.current_url


def test_a_tenant_key_sees_only_its_tenant(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    mine = publish(gw, "invoice.paid", tenant_id="acme")
    theirs = publish(gw, "invoice.paid", tenant_id="globex")
    key = create_key(gw, name="acme console", tenant_id="acme")["key"]
    sign_in(page, gw, key)
    text = page.find_element(By.TAG_NAME, "main").text
    assert mine["id"] in text and theirs["id"] not in text
    nav = page.find_element(By.TAG_NAME, "nav").text
    assert "API keys" not in nav and "Sources" not in nav  # the operator's, not a tenant's


def test_a_revoked_key_ends_its_sessions_at_once(gw: Gateway) -> None:
    created = create_key(gw, name="to revoke")
    client, _csrf = signed_in_client(gw, created["key"])
    assert client.get("/console").status_code == 200
    assert gw.api.delete(f"/v1/api-keys/{created['id']}").status_code in (200, 204)
    answer = client.get("/console")
    assert answer.status_code == 303 and "/console/login" in answer.headers["location"]


def test_a_form_without_its_csrf_token_changes_nothing(gw: Gateway) -> None:
    client, csrf = signed_in_client(gw)
    refused = client.post("/console/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert client.get("/console").status_code == 200  # still signed in
    assert client.post("/console/logout", data={}).status_code == 403
    assert client.post("/console/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/console").status_code == 303  # signed out


def test_pages_are_never_framed_and_run_only_their_own_scripts(gw: Gateway) -> None:
    client, _csrf = signed_in_client(gw)
    for path in ("/console", "/console/login", "/console/no-such-page"):
        answer = client.get(path)
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
    assert client.get("/console/no-such-page").status_code == 404


def test_the_session_cookie_is_httponly_and_strict(gw: Gateway) -> None:
    import re

    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as client:
        form = client.get("/console/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        answer = client.post(
            "/console/login",
            data={"api_key": gw.api.headers["authorization"].split()[1], "csrf_token": token[1]},
        )
    cookie = next(v for v in answer.headers.get_list("set-cookie") if v.startswith("gw_console="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    # A sign-in form posted from elsewhere (no double-submit cookie) opens nothing.
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as stranger:
        forged = stranger.post("/console/login", data={"api_key": "x", "csrf_token": "y"})
    assert forged.status_code == 400 and "gw_console=" not in forged.headers.get("set-cookie", "")


def test_signing_in_returns_to_the_page_asked_for_with_its_filters(page: Any, gw: Gateway) -> None:
    sign_in(page, gw, then="/events?type=invoice.paid")
    assert page.current_url.endswith("/console/events?type=invoice.paid")


def test_failed_sign_ins_are_rate_limited_per_address(
    tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> None:
    """Guessing keys through the form is as slow as through the API: the same limiter."""
    with own_gateway(
        "sqlite", tmp_path_factory.mktemp("signin-limit"), dns, GATEWAY_AUTH_FAILURE_RATE_LIMIT="1"
    ) as gw:
        with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as client:

            def attempt(key: str) -> httpx.Response:
                form = client.get("/console/login").text
                token = re.search(r'name="csrf_token" value="([^"]+)"', form)
                assert token is not None
                return client.post("/console/login", data={"api_key": key, "csrf_token": token[1]})

            answers = [attempt("gw_wrong-guess").status_code for _ in range(4)]
            assert answers[0] == 401 and 429 in answers, answers
            assert "Too many failed sign-ins" in attempt(API_KEY).text  # the right key waits too
            wait_until(
                lambda: attempt(API_KEY).status_code == 303, 10, "the limit to let the key in"
            )
