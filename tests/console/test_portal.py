"""The tenant portal: a link opens one tenant's portal, which shows and changes that tenant
alone, refuses links that expired, were tampered with or revoked, and can be framed
only where the operator allows."""

from __future__ import annotations

import json
import re
from contextlib import closing
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.browser import HOST, screenshot
from tests.support.dns import ScriptedDNS
from tests.support.gateway import Gateway, own_gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until


def portal_link(gw: Gateway, tenant_id: str, expires_in: int = 3600) -> str:
    answer = gw.api.post(
        "/v1/portal-links", json={"tenant_id": tenant_id, "expires_in": expires_in}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["url"]  # type: ignore[no-any-return]


def in_browser(gw: Gateway, url: str) -> str:
    """The link as the browser reaches the gateway (by its test host name)."""
    parts = urlsplit(url)
    return f"http://{HOST}:{gw.port}{parts.path}?{parts.query}"


def portal_client(gw: Gateway, url: str) -> tuple[httpx.Client, str]:
    """An HTTP client with the portal session the link opens, and its CSRF token."""
    client = httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", follow_redirects=False)
    parts = urlsplit(url)
    opened = client.get(f"{parts.path}?{parts.query}")
    assert opened.status_code == 303, opened.text
    page = client.get("/portal/endpoints/new")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None, page.text
    return client, csrf.group(1)


def _two_tenants(gw: Gateway, receiver: Receiver, path: str) -> dict[str, Any]:
    acme = make_endpoint(gw, receiver.url(path), tenant_id="acme", description="Billing")
    globex = make_endpoint(gw, receiver.url(path + "/g"), tenant_id="globex")
    mine = publish(gw, "invoice.paid", {"amount": 1200}, tenant_id="acme")
    theirs = publish(gw, "order.shipped", {"n": 2}, tenant_id="globex")
    for event in (mine, theirs):
        event["delivery"] = deliveries_of(gw, event["id"])[0]["id"]
        wait_delivery(gw, event["delivery"], "succeeded")
    return {"acme": acme, "globex": globex, "mine": mine, "theirs": theirs}


def test_a_link_opens_the_portal_of_its_tenant_alone(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    from selenium.webdriver.common.by import By

    seen = _two_tenants(gw, receiver, path)
    page.get(in_browser(gw, portal_link(gw, "acme")))
    wait_until(lambda: urlsplit(page.current_url).path == "/portal", 10, "the portal")
    assert "token" not in page.current_url  # traded for a cookie at once
    assert page.find_element(By.ID, "portal-tenant").text == "acme"
    main = page.find_element(By.TAG_NAME, "main").text
    assert seen["acme"]["id"] in main and seen["globex"]["id"] not in main
    assert "Billing" in main

    page.find_element(By.LINK_TEXT, "Deliveries").click()
    wait_until(lambda: "/portal/deliveries" in page.current_url, 10, "the deliveries")
    main = page.find_element(By.TAG_NAME, "main").text
    assert seen["mine"]["delivery"] in main
    assert seen["theirs"]["delivery"] not in main
    page.find_element(By.LINK_TEXT, seen["mine"]["delivery"]).click()
    wait_until(lambda: page.find_elements(By.ID, "attempts"), 10, "the attempt log")
    assert page.find_element(By.ID, "delivery-status").text == "succeeded"

    page.find_element(By.LINK_TEXT, "Event types").click()
    types = wait_until(lambda: page.find_elements(By.ID, "event-types"), 10, "event types")
    assert types[0].text.split() == ["invoice.paid"]

    page.find_element(By.LINK_TEXT, "Events").click()
    wait_until(lambda: "/portal/events" in page.current_url, 10, "the events")
    main = page.find_element(By.TAG_NAME, "main").text
    assert seen["mine"]["id"] in main and seen["theirs"]["id"] not in main

    # The address edited to the other tenant's endpoint: not found, as a page.
    own = f"http://{HOST}:{gw.port}/portal/endpoints/{seen['acme']['id']}"
    page.get(own)
    assert page.find_element(By.ID, "endpoint-url").text == seen["acme"]["url"]
    page.get(own.replace(seen["acme"]["id"], seen["globex"]["id"]))
    assert page.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert seen["globex"]["url"] not in page.page_source


def test_create_an_endpoint_from_the_portal_and_rotate_its_secret(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    from selenium.webdriver.common.by import By

    page.get(in_browser(gw, portal_link(gw, "acme")))
    wait_until(lambda: page.find_elements(By.ID, "new-endpoint"), 10, "the portal")
    page.find_element(By.ID, "new-endpoint").click()

    # A private address is refused with the API's own message, beside the field.
    private = "http://10.0.0.7/hooks"
    refused = gw.api.post("/v1/endpoints", json={"url": private, "tenant_id": "acme"})
    assert refused.status_code == 422
    message = refused.json()["detail"][0]["msg"]
    page.find_element(By.ID, "url").send_keys(private)
    page.find_element(By.ID, "event_types").send_keys("invoice.*")
    page.find_element(By.ID, "endpoint-form").submit()
    errors = wait_until(lambda: page.find_elements(By.ID, "url-errors"), 10, "the message")
    assert errors[0].text == message

    field = page.find_element(By.ID, "url")
    field.clear()
    field.send_keys(receiver.url(path))
    page.find_element(By.ID, "endpoint-form").submit()
    wait_until(lambda: "created=1" in page.current_url, 10, "the new endpoint's page")
    endpoint_id = page.current_url.split("/portal/endpoints/")[1].split("?")[0]
    created = gw.api.get(f"/v1/endpoints/{endpoint_id}").json()
    assert created["tenant_id"] == "acme" and created["event_types"] == ["invoice.*"]

    before = gw.api.get(f"/v1/endpoints/{endpoint_id}/secret").json()["secret"]
    page.find_element(By.ID, "rotate-secret").click()
    alert = wait_until(lambda: _alert(page), 5, "the confirmation")
    alert.accept()
    secret = wait_until(lambda: page.find_elements(By.ID, "secret"), 10, "the new secret")
    shown = secret[0].text
    assert shown.startswith("whsec_") and shown != before
    assert gw.api.get(f"/v1/endpoints/{endpoint_id}/secret").json()["secret"] == shown
    assert "whsec_" not in page.current_url  # shown in the page, never in a URL

    # A test event reaches the receiver from the portal.
    page.get(in_browser(gw, f"http://x/portal/endpoints/{endpoint_id}?"))
    page.find_element(By.ID, "send-test").click()
    wait_until(lambda: "test=evt_" in page.current_url, 10, "the test's notice")
    assert json.loads(receiver.wait_for(path, 1)[0].body)["type"] == "webhook.test"


def _alert(page: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return page.switch_to.alert
    except NoAlertPresentException:
        return None


def test_another_tenants_ids_answer_404_whatever_the_path(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    seen = _two_tenants(gw, receiver, path)
    client, csrf = portal_client(gw, portal_link(gw, "acme"))
    theirs = seen["globex"]["id"]
    event = seen["theirs"]["id"]
    delivery = seen["theirs"]["delivery"]
    with closing(client):
        for url in (
            f"/portal/endpoints/{theirs}",
            f"/portal/endpoints/{theirs}/edit",
            f"/portal/events/{event}",
            f"/portal/deliveries/{delivery}",
            "/portal/endpoints/ep_unknown",
        ):
            answer = client.get(url)
            assert answer.status_code == 404, (url, answer.text)
            assert "text/html" in answer.headers["content-type"]
        for action in ("disable", "rotate", "secret", "test", "edit", "recover"):
            answer = client.post(
                f"/portal/endpoints/{theirs}/{action}",
                data={"csrf_token": csrf, "url": receiver.url(path), "since": "2020-01-01T00:00"},
            )
            assert answer.status_code == 404, (action, answer.text)
        # Its own still answer.
        assert client.get(f"/portal/endpoints/{seen['acme']['id']}").status_code == 200
        assert client.get(f"/portal/events/{seen['mine']['id']}").status_code == 200
    after = gw.api.get(f"/v1/endpoints/{theirs}").json()
    assert after["disabled"] is False and after["updated_at"] == seen["globex"]["updated_at"]


def test_a_post_without_the_csrf_token_changes_nothing(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), tenant_id="acme")
    client, csrf = portal_client(gw, portal_link(gw, "acme"))
    with closing(client):
        for data in ({}, {"csrf_token": "forged"}):
            refused = client.post(f"/portal/endpoints/{endpoint['id']}/disable", data=data)
            assert refused.status_code == 403, refused.text
        assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["disabled"] is False
        done = client.post(f"/portal/endpoints/{endpoint['id']}/disable", data={"csrf_token": csrf})
        assert done.status_code == 303
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["disabled"] is True


def test_expired_tampered_and_revoked_links_are_refused(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    # Expired: a one-second link, refused once its second has passed.
    short = portal_link(gw, "acme", expires_in=1)

    def refused_as_expired() -> bool:
        with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as client:
            parts = urlsplit(short)
            return client.get(f"{parts.path}?{parts.query}").status_code == 410

    wait_until(refused_as_expired, 10, "the one-second link to expire")
    page.get(in_browser(gw, short))
    message = page.find_element(By.ID, "portal-message").text
    assert message == "This portal link has expired."
    page.get(f"http://{HOST}:{gw.port}/portal")
    assert "no portal session" in page.find_element(By.ID, "portal-message").text

    # Tampered: one character of the signature changed.
    good = portal_link(gw, "acme")
    token = parse_qs(urlsplit(good).query)["token"][0]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    page.get(f"http://{HOST}:{gw.port}/portal/enter?token={forged}")
    assert page.find_element(By.ID, "portal-message").text == "This portal link is not valid."
    # Another tenant's name in the claims, with the old signature: not valid either.
    header, claims, signature = token.split(".")
    import base64

    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["sub"] = "globex"
    swapped = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    page.get(f"http://{HOST}:{gw.port}/portal/enter?token={header}.{swapped}.{signature}")
    assert page.find_element(By.ID, "portal-message").text == "This portal link is not valid."

    # Revoked: the open session ends at once, and the link no longer opens one.
    page.get(in_browser(gw, good))
    wait_until(lambda: page.find_elements(By.ID, "portal-tenant"), 10, "the portal")
    assert gw.api.post("/v1/portal-links/revoke", json={"tenant_id": "acme"}).status_code == 204
    page.get(f"http://{HOST}:{gw.port}/portal")
    assert not page.find_elements(By.ID, "portal-tenant")
    assert "revoked" in page.find_element(By.ID, "portal-message").text
    page.get(in_browser(gw, good))
    assert page.find_element(By.ID, "portal-message").text == "This portal link has been revoked."

    # No link's token ever reaches a log line.
    tokens = [parse_qs(urlsplit(u).query)["token"][0] for u in (short, good)]
    logs = [
        f"{log.name}: {line[:120]}"
        for log in gw.workdir.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
        if any(t in line or t.split(".")[2] in line for t in tokens)
    ]
    assert not logs, logs
    assert not gw.leaked_secrets()


@pytest.fixture(scope="module")
def framed(tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS) -> Any:
    """A gateway that lets app.example.com frame its portal, reached over https."""
    with own_gateway(
        "sqlite",
        tmp_path_factory.mktemp("framed"),
        dns,
        GATEWAY_PORTAL_FRAME_ANCESTORS="https://app.example.com",
        GATEWAY_PUBLIC_URL="https://hooks.example.com",
    ) as gateway:
        yield gateway


def test_the_portal_is_framed_where_allowed_and_the_console_never(framed: Gateway) -> None:
    url = portal_link(framed, "acme")
    assert url.startswith("https://hooks.example.com/portal/enter?token=")
    with httpx.Client(base_url=f"http://127.0.0.1:{framed.port}") as client:
        parts = urlsplit(url)
        opened = client.get(f"{parts.path}?{parts.query}")
        assert opened.status_code == 303
        # Framed by another site, only SameSite=None cookies are sent, and only Secure ones.
        cookie = opened.headers["set-cookie"]
        assert "SameSite=none" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        client.cookies.set("gw_portal", opened.cookies["gw_portal"], path="/portal")
        for page in ("/portal", "/portal/event-types", "/portal/endpoints/ep_unknown"):
            answer = client.get(page)
            policy = answer.headers["content-security-policy"]
            assert "frame-ancestors https://app.example.com" in policy, (page, policy)
            assert "x-frame-options" not in answer.headers
        refused = client.get("/portal/enter?token=nonsense")
        assert (
            "frame-ancestors https://app.example.com" in refused.headers["content-security-policy"]
        )
        console = client.get("/console/login")
        assert "frame-ancestors 'none'" in console.headers["content-security-policy"]
        assert console.headers["x-frame-options"] == "DENY"


def test_portal_pages_are_not_framed_by_default(gw: Gateway) -> None:
    client, _csrf = portal_client(gw, portal_link(gw, "acme"))
    with closing(client):
        answer = client.get("/portal")
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"


def test_screenshot_of_the_portal(page: Any, gw: Gateway, receiver: Receiver, path: str) -> None:
    """docs/images/portal.png: one of a tenant's endpoints, with its deliveries, as the
    tenant's portal shows it."""
    from selenium.webdriver.common.by import By

    if gw.backend != "sqlite":
        pytest.skip("one screenshot is enough: the sqlite run takes it")
    port = urlsplit(receiver.url(path)).port
    for host in ("billing.acme.example", "crm.acme.example"):
        gw.dns.resolver.script(host, ["127.0.0.1"])
    receiver.set(path + "/crm", Reply(status=503))
    billing = make_endpoint(
        gw,
        f"http://billing.acme.example:{port}{path}/billing",
        tenant_id="acme",
        description="Billing service",
        event_types=["invoice.*"],
        headers={"X-Acme-Team": "billing"},
    )
    make_endpoint(
        gw,
        f"http://crm.acme.example:{port}{path}/crm",
        tenant_id="acme",
        description="CRM sync",
        event_types=["customer.*"],
    )
    last = None
    for event_type, amount in (
        ("invoice.created", 4200),
        ("invoice.paid", 4200),
        ("invoice.created", 1999),
        ("customer.created", 0),
        ("invoice.paid", 1999),
    ):
        last = publish(
            gw, event_type, {"invoice": "in_1Q2w3E4r", "amount": amount}, tenant_id="acme"
        )
    assert last is not None
    wait_delivery(gw, deliveries_of(gw, last["id"])[0]["id"], "succeeded")
    page.get(in_browser(gw, portal_link(gw, "acme")))
    wait_until(lambda: page.find_elements(By.ID, "endpoints"), 10, "the portal")
    page.find_element(By.LINK_TEXT, billing["id"]).click()
    wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "table.deliveries"), 10, "deliveries")
    screenshot(page, "portal.png", (1280, 1080))


def test_edit_reveal_and_an_inert_payload(gw: Gateway, receiver: Receiver, path: str) -> None:
    endpoint = make_endpoint(gw, receiver.url(path), tenant_id="acme")
    event = publish(
        gw, "invoice.paid", {"note": "<script>alert(1)</script><img onerror=x>"}, tenant_id="acme"
    )
    client, csrf = portal_client(gw, portal_link(gw, "acme"))
    edit = f"/portal/endpoints/{endpoint['id']}/edit"
    with closing(client):
        refused = client.post(edit, data={"csrf_token": csrf, "url": "http://10.0.0.7/x"})
        assert refused.status_code == 422 and 'id="url-errors"' in refused.text
        saved = client.post(
            edit,
            data={"csrf_token": csrf, "url": receiver.url(path), "description": "Ledger"},
        )
        assert saved.status_code == 303, saved.text
        revealed = client.post(
            f"/portal/endpoints/{endpoint['id']}/secret", data={"csrf_token": csrf}
        )
        assert endpoint["secret"] in revealed.text
        shown = client.get(f"/portal/events/{event['id']}").text
        assert "<script>" not in shown and "<img" not in shown
    after = gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()
    assert after["description"] == "Ledger" and after["tenant_id"] == "acme"


def test_recover_counts_first_then_queues_the_tenants_failed_deliveries(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    """The portal's endpoint pages are the console's: recovering shows the count first."""
    receiver.set(path, Reply(500))
    endpoint = make_endpoint(gw, receiver.url(path), tenant_id="acme")
    event = publish(gw, "invoice.paid", {"n": 1}, tenant_id="acme")
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "failed")
    receiver.set(path, Reply(200))
    client, csrf = portal_client(gw, portal_link(gw, "acme"))
    recover = f"/portal/endpoints/{endpoint['id']}/recover"
    since = "2020-01-01T00:00:00Z"
    with closing(client):
        refused = client.get(recover, params={"since": "yesterday"})
        assert refused.status_code == 422 and 'id="since-errors"' in refused.text
        page = client.get(recover, params={"since": since})
        assert page.status_code == 200
        assert "<strong>1</strong> failed delivery will be queued again." in page.text
        queued = client.post(recover, data={"csrf_token": csrf, "since": since})
        assert queued.status_code == 303
        assert queued.headers["location"].endswith("?requeued=1")
    wait_delivery(gw, delivery["id"], "succeeded")
