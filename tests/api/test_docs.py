"""The API's documentation: `/docs` works with no network, and the OpenAPI document
tells a reader everything (every field described, examples that are valid, the
answers each route really gives, what an endpoint receives).

The document does not depend on the backend, so one SQLite gateway of this module's
own serves it. The browser is Debian's Chromium, driven headless by Selenium with
every request to anywhere but the gateway sent to a closed port: the page must
render from what the gateway serves alone.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.dns import ScriptedDNS
from tests.support.gateway import Gateway, own_gateway
from tests.support.receiver import wait_until

# The browser reaches the gateway by a name that is not loopback's: a page that would
# fetch something only for non-local hosts (Swagger UI's validator badge does) shows it.
DOCS_HOST = "gateway.test"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def docs_gateway(tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS) -> Iterator[Gateway]:
    with own_gateway("sqlite", tmp_path_factory.mktemp("docs"), dns) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def document(docs_gateway: Gateway) -> dict[str, Any]:
    response = docs_gateway.api.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


# --- the page, in a browser without network


def _browser() -> Any:
    """Headless Chromium that can reach the gateway's host only; skips (fails in CI)
    when Debian's chromium and chromium-driver are not installed."""
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        reason = (
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver; .ci/run does)"
        )
        if IN_CI:
            pytest.fail(f"CI=true but {reason}: /docs cannot be checked in a browser")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        # The gateway's name leads to it; everything else goes to a proxy on a closed
        # port, so any request the page makes elsewhere fails (and is logged).
        f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        f"--proxy-bypass-list={DOCS_HOST}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def _requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked the network for, from Chromium's DevTools log (failed
    requests included, which the page's own resource list leaves out)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_docs_render_without_network(docs_gateway: Gateway, document: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    origin = f"http://{DOCS_HOST}:{docs_gateway.port}"
    # Operations and webhooks: Swagger UI draws a block for each.
    blocks = sum(1 for _ in _operations(document)) + sum(
        len(item) for item in document.get("webhooks", {}).values()
    )

    def foreign(urls: list[str]) -> list[str]:
        return [
            url
            for url in urls
            if urlsplit(url).scheme not in ("data", "blob") and not url.startswith(origin + "/")
        ]

    driver = _browser()
    try:
        driver.get(f"{origin}/docs")
        try:
            wait_until(
                lambda: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= blocks,
                30,
                f"Swagger UI to draw {blocks} operations and webhooks",
            )
        except AssertionError as exc:
            elsewhere = foreign(_requested_urls(driver))
            raise AssertionError(f"{exc}; requested elsewhere: {elsewhere}") from None
        errors = driver.find_elements(By.CSS_SELECTOR, ".errors-wrapper")
        assert not errors, errors[0].text
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        requested = _requested_urls(driver)
    finally:
        driver.quit()
    assert f"{origin}/openapi.json" in loaded, loaded
    assert f"{origin}/docs/assets/swagger-ui-bundle.js" in requested, requested
    outside = foreign([*loaded, *requested])
    assert not outside, f"/docs fetched from outside the gateway: {outside}"


def test_docs_pages_are_public(docs_gateway: Gateway) -> None:
    from tests.support.helpers import anonymous_client

    with anonymous_client(docs_gateway) as client:
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            assert client.get(path).status_code == 200, path
        page = client.get("/docs").text
        assert "cdn." not in page and "https://" not in page, page
