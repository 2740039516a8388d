"""Steps the console's tests take: sign in from the form, read the session's CSRF token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.browser import HOST
from tests.support.gateway import API_KEY, Gateway
from tests.support.receiver import wait_until


def console_url(gw: Gateway, path: str = "") -> str:
    return f"http://{HOST}:{gw.port}/console{path}"


def sign_in(driver: Any, gw: Gateway, key: str = API_KEY, then: str = "") -> None:
    """Sign in through the login form, as a person does; lands on `then` (a console path)."""
    from selenium.webdriver.common.by import By

    driver.get(console_url(gw, then))
    wait_until(lambda: "/console/login" in driver.current_url, 10, "the sign-in page")
    field = driver.find_element(By.ID, "api_key")
    field.send_keys(key)
    field.submit()
    wait_until(
        lambda: "/console/login" not in driver.current_url, 10, "the console after signing in"
    )


def signed_in_client(gw: Gateway, key: str = API_KEY) -> tuple[httpx.Client, str]:
    """An HTTP client holding a console session, and the session's CSRF token."""
    import re

    client = httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", follow_redirects=False)
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    answer = client.post(
        "/console/login", data={"api_key": key, "csrf_token": token.group(1), "next": "/console"}
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/console")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None, page.text
    return client, csrf.group(1)
