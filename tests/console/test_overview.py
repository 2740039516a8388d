"""The console's overview: figures of real deliveries, the endpoint failing now, the
refused inbound requests, charts a screen reader can read, and a live refresh that
shows a new delivery without reloading the page. Both backends."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from tests.support.browser import screenshot
from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import (
    anonymous_client,
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply, wait_until


def _traffic(gw: Gateway, receiver: Receiver) -> dict[str, Any]:
    """Orders go to a healthy endpoint and to one that answers 500; invoices to the
    healthy one alone. Every delivery runs to its end."""
    name = f"overview-{gw.backend}"
    receiver.set(f"/{name}/broken", Reply(500, b"database unavailable"))
    healthy = make_endpoint(
        gw, receiver.url(f"/{name}/orders"), description="Order service", tenant_id="acme"
    )
    broken = make_endpoint(
        gw,
        receiver.url(f"/{name}/broken"),
        description="Legacy billing",
        event_types=["order.*"],
        tenant_id="globex",
    )
    waits = []
    for n in range(6):
        event = publish(gw, "order.created", {"order": n}, tenant_id="acme")
        waits += [(d["id"], "succeeded") for d in deliveries_of(gw, event["id"])]
    for n in range(2):
        event = publish(gw, "order.created", {"order": 100 + n}, tenant_id="globex")
        waits += [(d["id"], "failed") for d in deliveries_of(gw, event["id"])]
    for delivery_id, status in waits:
        wait_delivery(gw, delivery_id, status, timeout=40)
    wait_until(
        lambda: gw.api.get(f"/v1/endpoints/{broken['id']}").json().get("failing_since"),
        20,
        "the broken endpoint to be failing",
    )
    # A provider posting with the wrong secret: refused, and shown to the operator.
    source = gw.api.post(
        "/v1/sources", json={"name": "GitHub", "provider": "github", "secret": "right-secret"}
    ).json()
    body = b'{"action": "opened"}'
    forged = "sha256=" + hmac.new(b"stale-secret", body, hashlib.sha256).hexdigest()
    with anonymous_client(gw) as client:
        answer = client.post(
            f"/in/{source['id']}",
            content=body,
            headers={"X-Hub-Signature-256": forged, "X-GitHub-Event": "issues"},
        )
        assert answer.status_code == 401
    wait_until(
        lambda: gw.api.get(f"/v1/sources/{source['id']}/refusals").json()["data"],
        15,
        "the refusal to be logged",
    )
    return {"healthy": healthy, "broken": broken, "source": source}


def _unless_swapped(check: Any) -> None:
    """Run `check` again when the live refresh swapped the section out from under it
    (every 5 s): its elements are then stale, not wrong."""
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt() -> bool:
        try:
            assert check()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(attempt, 20, "the overview read between two refreshes")


def test_overview_shows_the_figures_and_refreshes_live(
    page: Any, gw: Gateway, receiver: Receiver
) -> None:
    from selenium.webdriver.common.by import By

    made = _traffic(gw, receiver)
    sign_in(page, gw)
    assert page.find_element(By.TAG_NAME, "h1").text == "Overview"

    def figure(element_id: str) -> str:
        return str(page.find_element(By.ID, element_id).text)

    def shown() -> bool:
        # 6 successes; 2 deliveries x 4 attempts to the broken endpoint.
        assert figure("attempts-hour") == "14"
        assert figure("succeeded-hour") == "6"
        assert figure("failed-hour") == "8"
        assert figure("rate-hour") == "42.9 %"
        latency = figure("latency-hour")
        assert re.fullmatch(r"\d+ ms / \d+ ms / \d+ ms", latency), latency
        assert figure("backlog") == "0"
        failing = page.find_element(By.ID, "failing")
        assert made["broken"]["id"] in failing.text
        assert made["healthy"]["id"] not in failing.text
        link = failing.find_element(By.LINK_TEXT, made["broken"]["id"])
        assert link.get_attribute("href").endswith(f"/console/endpoints/{made['broken']['id']}")
        refusals = page.find_element(By.ID, "refusals")
        assert made["source"]["id"] in refusals.text and "bad_signature" in refusals.text
        # The charts: an image with a title and a description, and the bars drawn.
        chart = page.find_element(By.ID, "chart-hour")
        assert chart.get_attribute("role") == "img"
        desc = page.find_element(By.ID, "chart-hour-desc").get_attribute("textContent")
        assert "14 attempts" in desc
        for kind in ("ok", "retried", "failed"):
            assert chart.find_elements(By.CSS_SELECTOR, f"rect.bar-{kind}"), kind
        assert page.find_elements(By.CSS_SELECTOR, "#chart-day rect.bar-ok")
        return True

    _unless_swapped(shown)

    screenshot(page, "console-overview.png", (1280, 1500))

    # A new delivery shows up by itself: the page is not reloaded (the marker stays).
    page.execute_script("window.notReloaded = true")
    event = publish(gw, "invoice.paid", {"amount": 4200}, tenant_id="acme")
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "succeeded")

    def refreshed() -> bool:
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            return bool(page.find_element(By.ID, "succeeded-hour").text == "7")
        except StaleElementReferenceException:
            return False

    wait_until(refreshed, 20, "the overview to show the new delivery")
    _unless_swapped(
        lambda: (
            figure("attempts-hour") == "15"
            and event["id"] in page.find_element(By.ID, "latest-events").text
        )
    )
    assert page.execute_script("return window.notReloaded === true")
    assert page.current_url == console_url(gw)


def _overview_html(gw: Gateway, key: str | None = None) -> str:
    client, _csrf = signed_in_client(gw) if key is None else signed_in_client(gw, key)
    try:
        response = client.get("/console")
        assert response.status_code == 200, response.text
        return response.text
    finally:
        client.close()


def test_overview_works_without_javascript_and_per_tenant(gw: Gateway, receiver: Receiver) -> None:
    made = _traffic(gw, receiver)
    html = _overview_html(gw)
    assert 'id="attempts-hour">14<' in html
    assert made["broken"]["id"] in html and made["source"]["id"] in html
    assert '<title id="chart-day-title">Last 24 hours, per hour</title>' in html

    # A tenant's console: its own figures, no other tenant's endpoint, no sources.
    key = create_key(gw, name="globex console", tenant_id="globex")["key"]
    html = _overview_html(gw, key)
    assert 'id="attempts-hour">8<' in html
    assert 'id="succeeded-hour" class="ok">0<' in html
    assert made["broken"]["id"] in html
    assert made["healthy"]["id"] not in html
    assert made["source"]["id"] not in html and 'id="refusals' not in html
    key = create_key(gw, name="acme console", tenant_id="acme")["key"]
    html = _overview_html(gw, key)
    assert 'id="attempts-hour">6<' in html and 'id="failing-none"' in html
