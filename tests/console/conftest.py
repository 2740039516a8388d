"""Fixtures of the console's tests: a browser, and signing it in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import HOST, chromium
from tests.support.gateway import Gateway


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run; each test starts signed out."""
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any, gw: Gateway) -> Iterator[Any]:
    """The browser, signed out of the console of this test's gateway."""
    browser.delete_all_cookies()
    browser.get(f"http://{HOST}:{gw.port}/console/login")
    browser.delete_all_cookies()
    yield browser
    browser.delete_all_cookies()
