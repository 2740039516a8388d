"""Debian's headless Chromium for the tests that look at pages, through Selenium.

The page's host name (`HOST`) leads to the gateway on loopback; every other request
goes to a proxy on a closed port and fails, so a page that reached for the internet
would show it. Without chromium and chromium-driver the tests skip, loudly; with
CI=true they fail instead (.ci/run installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

HOST = "gateway.test"
IN_CI = os.environ.get("CI", "").lower() == "true"


def chromium(host: str = HOST, window: tuple[int, int] = (1280, 900)) -> Any:
    """A new headless Chromium that reaches `host` (mapped to 127.0.0.1) and nothing else."""
    binary = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        reason = (
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver; .ci/run does)"
        )
        if IN_CI:
            pytest.fail(f"CI=true but {reason}: pages cannot be checked in a browser")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--window-size={window[0]},{window[1]}",
        f"--host-resolver-rules=MAP {host} 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        f"--proxy-bypass-list={host}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked the network for, from Chromium's DevTools log (failed
    requests included, which the page's own resource list leaves out)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def screenshot(driver: Any, name: str, size: tuple[int, int] = (1280, 1100)) -> Path:
    """The page as a PNG of `size`. The README's screenshots in docs/images are replaced
    only with UPDATE_SCREENSHOTS=1; other runs write them to a temporary folder, so a test
    run leaves the checkout as it was."""
    folder = (
        DOCS_IMAGES
        if os.environ.get("UPDATE_SCREENSHOTS") == "1"
        else Path(tempfile.gettempdir()) / "gateway-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    before = driver.get_window_size()
    driver.set_window_size(*size)
    try:
        target = folder / name
        assert driver.save_screenshot(str(target)), f"no screenshot of {name}"
    finally:
        driver.set_window_size(before["width"], before["height"])
    return target
