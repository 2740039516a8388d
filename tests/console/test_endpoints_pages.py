"""The console's endpoint pages: a person lists, opens, creates, changes, tests and recovers
endpoints in a real browser; what must be refused is checked with a session's HTTP client."""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import create_key, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def _main_text(page: Any) -> str:
    return str(page.find_element(_by().TAG_NAME, "main").text)


def _click_confirmed(page: Any, element_id: str) -> None:
    """Click a button whose form asks first (data-confirm), and say yes."""
    page.find_element(_by().ID, element_id).click()
    alert = wait_until(lambda: _alert(page), 10, "the confirmation dialog")
    alert.accept()


def _alert(page: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return page.switch_to.alert
    except NoAlertPresentException:
        return None


def _endpoint(gw: Gateway, endpoint_id: str) -> dict[str, Any]:
    answer = gw.api.get(f"/v1/endpoints/{endpoint_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _api_error(gw: Gateway, body: dict[str, Any]) -> str:
    """The API's message for a create body it refuses."""
    answer = gw.api.post("/v1/endpoints", json=body)
    assert answer.status_code == 422, answer.text
    return str(answer.json()["detail"][0]["msg"])


def _ids_listed(page: Any) -> set[str]:
    links = page.find_elements(_by().CSS_SELECTOR, "#endpoints tbody tr td:first-child a")
    return {link.text for link in links}


# --- in the browser


def test_list_filter_and_open_an_endpoint(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    by = _by()
    acme = make_endpoint(
        gw,
        receiver.url(path),
        tenant_id="acme",
        description="acme billing",
        event_types=["invoice.*"],
        headers={"X-Team": "billing"},
    )
    globex = make_endpoint(gw, receiver.url(path + "/g"), tenant_id="globex", disabled=True)
    published_only = make_endpoint(gw, receiver.url(path + "/p"), source_ids=[])

    sign_in(page, gw, then="/endpoints")
    assert page.find_element(by.TAG_NAME, "h1").text == "Endpoints"
    assert _ids_listed(page) == {acme["id"], globex["id"], published_only["id"]}

    page.find_element(by.ID, "filter-tenant").send_keys("acme")
    page.find_element(by.ID, "apply-filters").click()
    wait_until(lambda: "tenant_id=acme" in page.current_url, 10, "the filtered list")
    assert _ids_listed(page) == {acme["id"]}

    page.get(console_url(gw, "/endpoints"))
    from selenium.webdriver.support.ui import Select

    Select(page.find_element(by.ID, "filter-status")).select_by_visible_text("Disabled")
    page.find_element(by.ID, "apply-filters").click()
    wait_until(lambda: "status=disabled" in page.current_url, 10, "the filtered list")
    assert _ids_listed(page) == {globex["id"]}

    page.get(console_url(gw, "/endpoints"))
    page.find_element(by.LINK_TEXT, acme["id"]).click()
    wait_until(lambda: acme["id"] in page.current_url, 10, "the endpoint's page")
    assert page.find_element(by.ID, "endpoint-url").text == acme["url"]
    text = _main_text(page)
    assert "acme billing" in text and "invoice.*" in text and "X-Team: billing" in text
    assert page.find_element(by.ID, "endpoint-origin").text.startswith("Every origin")
    assert "hidden" in text and acme["secret"] not in page.page_source

    page.get(console_url(gw, f"/endpoints/{published_only['id']}"))
    assert page.find_element(by.ID, "endpoint-origin").text.startswith("Published only")


def test_create_an_endpoint_from_the_form(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    by = _by()
    sign_in(page, gw, then="/endpoints/new")
    assert page.find_element(by.CSS_SELECTOR, "label[for=url]").text == "URL"

    # Refused as the API refuses it, with its message beside the field; nothing created.
    refused_url = "http://127.0.0.2/hook"
    page.find_element(by.ID, "url").send_keys(refused_url)
    page.find_element(by.ID, "description").send_keys("kept as typed")
    page.find_element(by.ID, "save-endpoint").click()
    errors = wait_until(lambda: page.find_elements(by.ID, "url-errors"), 10, "the url's message")
    assert errors[0].text == _api_error(gw, {"url": refused_url})
    assert page.find_element(by.ID, "url").get_attribute("value") == refused_url
    assert page.find_element(by.ID, "description").get_attribute("value") == "kept as typed"

    url = page.find_element(by.ID, "url")
    url.clear()
    url.send_keys(receiver.url(path))
    page.find_element(by.ID, "event_types").send_keys("invoice.*, bad type!")
    page.find_element(by.ID, "save-endpoint").click()
    errors = wait_until(
        lambda: page.find_elements(by.ID, "event_types-errors"), 10, "the types' message"
    )
    expected = _api_error(gw, {"url": receiver.url(path), "event_types": ["bad type!"]})
    assert errors[0].text == expected
    assert gw.api.get("/v1/endpoints").json()["data"] == []

    types = page.find_element(by.ID, "event_types")
    types.clear()
    types.send_keys("invoice.*, customer.deleted")
    page.find_element(by.ID, "origin-published").click()
    page.find_element(by.ID, "headers").send_keys("X-Team: billing\nX-Env: test")
    page.find_element(by.ID, "rate_limit").send_keys("20")
    page.find_element(by.ID, "save-endpoint").click()
    wait_until(lambda: page.find_elements(by.ID, "endpoint-id"), 10, "the new endpoint's page")
    [created] = gw.api.get("/v1/endpoints").json()["data"]
    assert page.find_element(by.ID, "endpoint-id").text == created["id"]
    assert created["url"] == receiver.url(path)
    assert created["description"] == "kept as typed"
    assert created["event_types"] == ["invoice.*", "customer.deleted"]
    assert created["source_ids"] == []
    assert created["headers"] == {"X-Team": "billing", "X-Env": "test"}
    assert created["rate_limit"] == 20 and created["tenant_id"] is None


def test_edit_filters_origin_and_headers(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    by = _by()
    endpoint = make_endpoint(gw, receiver.url(path), headers={"X-Old": "1"})
    sign_in(page, gw, then=f"/endpoints/{endpoint['id']}")
    page.find_element(by.ID, "edit-endpoint").click()
    headers = wait_until(lambda: page.find_elements(by.ID, "headers"), 10, "the form")[0]
    assert headers.get_attribute("value") == "X-Old: 1"
    headers.clear()
    headers.send_keys("X-New: 2")
    page.find_element(by.ID, "event_types").send_keys("order.*")
    page.find_element(by.ID, "origin-published").click()
    page.find_element(by.ID, "save-endpoint").click()
    wait_until(lambda: "updated=1" in page.current_url, 10, "the endpoint's page")
    changed = _endpoint(gw, endpoint["id"])
    assert changed["headers"] == {"X-New": "2"}
    assert changed["event_types"] == ["order.*"] and changed["source_ids"] == []
    assert page.find_element(by.ID, "endpoint-origin").text.startswith("Published only")


def test_disable_and_enable(page: Any, gw: Gateway, receiver: Receiver, path: str) -> None:
    by = _by()
    endpoint = make_endpoint(gw, receiver.url(path))
    sign_in(page, gw, then=f"/endpoints/{endpoint['id']}")
    _click_confirmed(page, "disable")
    wait_until(lambda: page.find_elements(by.ID, "enable"), 10, "the enable button")
    assert _endpoint(gw, endpoint["id"])["disabled"] is True
    assert page.find_element(by.ID, "endpoint-state").text.startswith("disabled")
    page.find_element(by.ID, "enable").click()
    wait_until(lambda: page.find_elements(by.ID, "disable"), 10, "the disable button")
    assert _endpoint(gw, endpoint["id"])["disabled"] is False


def test_rotate_the_secret_and_verify_a_delivery_with_it(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    by = _by()
    endpoint = make_endpoint(gw, receiver.url(path))
    sign_in(page, gw, then=f"/endpoints/{endpoint['id']}")
    _click_confirmed(page, "rotate-secret")
    shown = wait_until(lambda: page.find_elements(by.ID, "secret"), 10, "the new secret")
    secret = shown[0].text
    assert secret.startswith("whsec_") and secret != endpoint["secret"]
    assert secret not in page.current_url
    assert "24 hours" in page.find_element(by.ID, "overlap").text
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}/secret").json()["secret"] == secret

    # Shown once: the endpoint's page does not show it again.
    page.get(console_url(gw, f"/endpoints/{endpoint['id']}"))
    assert secret not in page.page_source

    event = publish(gw, "invoice.paid", {"amount": 5})
    [request] = receiver.wait_for(path, 1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == event["id"]
    # The previous secret keeps signing beside it for the overlap.
    Webhook(endpoint["secret"]).verify(request.body, request.headers)

    page.find_element(by.ID, "reveal-secret").click()
    revealed = wait_until(lambda: page.find_elements(by.ID, "secret"), 10, "the secret")
    assert revealed[0].text == secret and secret not in page.current_url


def test_send_a_test_event(page: Any, gw: Gateway, receiver: Receiver, path: str) -> None:
    by = _by()
    endpoint = make_endpoint(gw, receiver.url(path), event_types=["invoice.*"])
    sign_in(page, gw, then=f"/endpoints/{endpoint['id']}")
    page.find_element(by.ID, "send-test").click()
    [request] = receiver.wait_for(path, 1)
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    wait_until(lambda: "test=evt_" in page.current_url, 10, "the endpoint's page")
    assert f"Test event {payload['id']} sent" in _main_text(page)
    link = page.find_element(by.CSS_SELECTOR, "#deliveries tbody tr td:nth-child(2) a")
    assert link.text == payload["id"]
    assert link.get_attribute("href").endswith(f"/console/events/{payload['id']}")

    # The deliveries refresh in place: it shows as succeeded without a reload.
    def succeeded() -> bool:
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            cell = page.find_element(by.CSS_SELECTOR, "#deliveries tbody tr td:nth-child(3)")
            return bool(cell.text == "succeeded")
        except StaleElementReferenceException:  # swapped by a refresh between two steps
            return False

    wait_until(succeeded, 15, "the delivery to show as succeeded")


def test_recover_shows_the_count_then_requeues(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    by = _by()
    receiver.set(path, Reply(500))
    endpoint = make_endpoint(gw, receiver.url(path))
    event = publish(gw, "invoice.paid")
    [delivery] = gw.api.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
    wait_delivery(gw, delivery["id"], "failed")
    receiver.set(path, Reply(200))

    sign_in(page, gw, then=f"/endpoints/{endpoint['id']}")
    page.find_element(by.ID, "recover").click()
    page.find_element(by.ID, "preview").click()
    count = wait_until(lambda: page.find_elements(by.ID, "recover-count"), 10, "the count")
    assert count[0].text == "1 failed delivery will be queued again."
    assert gw.api.get(f"/v1/deliveries/{delivery['id']}").json()["status"] == "failed"

    page.find_element(by.ID, "confirm-recover").click()
    wait_until(lambda: "requeued=1" in page.current_url, 10, "the endpoint's page")
    assert "1 failed deliveries queued again." in _main_text(page)
    wait_delivery(gw, delivery["id"], "succeeded")

    # The chart of its success rate and latency: the same figures the API gives.
    figures = gw.api.get(f"/v1/endpoints/{endpoint['id']}/stats?bucket=hour").json()
    assert figures["attempts"] >= 2 and 0 < figures["succeeded"] < figures["attempts"]
    page.get(console_url(gw, f"/endpoints/{endpoint['id']}"))
    rate = page.find_element(by.ID, "success-rate").text
    assert rate == f"{figures['success_rate'] * 100:.1f}%"
    latency = figures["latency_ms"]
    assert page.find_element(by.ID, "latency").text == (
        f"p50 {latency['p50']} ms · p95 {latency['p95']} ms · p99 {latency['p99']} ms"
    )
    path_d = page.find_element(by.CSS_SELECTOR, "#chart-rate path.line-rate")
    assert path_d.get_attribute("d").startswith("M")
    assert page.find_element(by.CSS_SELECTOR, "#chart-latency path.line-p95").get_attribute("d")
    from selenium.webdriver.support.ui import Select

    Select(page.find_element(by.ID, "chart-range")).select_by_value("hour")
    page.find_element(by.ID, "chart-apply").click()
    wait_until(lambda: "chart=hour" in page.current_url, 10, "the last hour's chart")
    assert page.find_element(by.ID, "success-rate").text == rate


def test_delete_after_a_confirmation(page: Any, gw: Gateway, receiver: Receiver, path: str) -> None:
    by = _by()
    endpoint = make_endpoint(gw, receiver.url(path))
    sign_in(page, gw, then=f"/endpoints/{endpoint['id']}")
    page.find_element(by.ID, "delete").click()
    confirm = wait_until(lambda: page.find_elements(by.ID, "confirm-delete"), 10, "the question")
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").status_code == 200  # asked, not done
    confirm[0].click()
    wait_until(lambda: "deleted=" in page.current_url, 10, "the list")
    assert f"Endpoint {endpoint['id']} deleted" in _main_text(page)
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").status_code == 404
    page.get(console_url(gw, f"/endpoints/{endpoint['id']}"))
    assert page.find_element(by.TAG_NAME, "h1").text == "Not found"


def test_a_recovery_time_the_api_refuses_is_refused_with_its_message(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    api = gw.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={"since": "yesterday"})
    assert api.status_code == 422
    message = api.json()["detail"][0]["msg"]
    client, csrf = signed_in_client(gw)
    with closing(client):
        preview = client.get(f"/console/endpoints/{endpoint['id']}/recover?since=yesterday")
        assert preview.status_code == 422 and message in preview.text
        assert 'id="recover-count"' not in preview.text
        done = client.post(
            f"/console/endpoints/{endpoint['id']}/recover",
            data={"csrf_token": csrf, "since": "yesterday"},
        )
        assert done.status_code == 422 and message in done.text


def test_form_mistakes_of_its_own_are_named_beside_their_fields(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    client, csrf = signed_in_client(gw)
    with closing(client):
        answer = client.post(
            "/console/endpoints/new",
            data={
                "csrf_token": csrf,
                "url": receiver.url(path),
                "origin": "sources",
                "source_ids": " ",
                "headers": "X-Team billing",
            },
        )
    assert answer.status_code == 422
    assert "name at least one source, or choose &#39;Published only&#39;" in answer.text
    assert "line 1: write each header as &#39;Name: value&#39;" in answer.text
    assert "X-Team billing</textarea>" in answer.text  # kept as typed
    assert gw.api.get("/v1/endpoints").json()["data"] == []


def test_markup_in_a_description_shows_as_text(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    by = _by()
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    endpoint = make_endpoint(gw, receiver.url(path), description=payload)
    sign_in(page, gw, then="/endpoints")
    for where in (
        "/endpoints",
        f"/endpoints/{endpoint['id']}",
        f"/endpoints/{endpoint['id']}/edit",
    ):
        page.get(console_url(gw, where))
        assert _alert(page) is None, where
        assert not page.find_elements(by.CSS_SELECTOR, "main img, main script"), where
        # Nothing the payload would have made: no image asked for x, no script element.
        assert not page.execute_script(
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('/x'))"
        ), where
    page.get(console_url(gw, f"/endpoints/{endpoint['id']}"))
    assert page.find_element(by.ID, "endpoint-description").text == payload
    page.get(console_url(gw, "/endpoints"))
    assert payload in _main_text(page)


# --- with a session's HTTP client: what is refused


def _every_route(endpoint_id: str) -> tuple[list[str], list[str]]:
    pages = ["", "/edit", "/recover", "/recover?since=2020-01-01T00:00:00Z", "/delete"]
    actions = ["/edit", "/enable", "/disable", "/rotate", "/secret", "/test", "/recover", "/delete"]
    base = f"/console/endpoints/{endpoint_id}"
    return [base + p for p in pages], [base + a for a in actions]


def test_another_tenants_endpoint_is_not_found_everywhere(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    theirs = make_endpoint(gw, receiver.url(path), tenant_id="globex")
    mine = make_endpoint(gw, receiver.url(path + "/mine"), tenant_id="acme")
    key = create_key(gw, name="acme console", tenant_id="acme")["key"]
    client, csrf = signed_in_client(gw, key)
    before = _endpoint(gw, theirs["id"])
    secret = gw.api.get(f"/v1/endpoints/{theirs['id']}/secret").json()["secret"]
    with closing(client):
        for endpoint_id in (theirs["id"], "ep_unknown", "nope%00"):
            gets, posts = _every_route(endpoint_id)
            for url in gets:
                answer = client.get(url)
                assert answer.status_code == 404, (url, answer.status_code)
                assert "globex" not in answer.text
            for url in posts:
                fields = {
                    "csrf_token": csrf,
                    "url": receiver.url("/x"),
                    "since": "2020-01-01T00:00:00Z",
                }
                answer = client.post(url, data=fields)
                assert answer.status_code == 404, (url, answer.status_code)
                assert "whsec_" not in answer.text
        listed = client.get("/console/endpoints?tenant_id=globex").text
        assert theirs["id"] not in listed
        listed = client.get("/console/endpoints").text
        assert mine["id"] in listed and theirs["id"] not in listed

        # A tenant's key creates within its own tenant, whatever the form says.
        created = client.post(
            "/console/endpoints/new",
            data={"csrf_token": csrf, "url": receiver.url(path + "/new"), "tenant_id": "globex"},
        )
        assert created.status_code == 303, created.text
    after = _endpoint(gw, theirs["id"])
    assert after == before
    assert gw.api.get(f"/v1/endpoints/{theirs['id']}/secret").json()["secret"] == secret
    tenants = {e["url"]: e["tenant_id"] for e in gw.api.get("/v1/endpoints").json()["data"]}
    assert tenants[receiver.url(path + "/new")] == "acme"


def test_a_post_without_the_csrf_token_changes_nothing(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    endpoint = make_endpoint(gw, receiver.url(path))
    client, _csrf = signed_in_client(gw)
    with closing(client):
        _gets, posts = _every_route(endpoint["id"])
        for url in posts:
            for token in ({}, {"csrf_token": "forged"}):
                fields = {**token, "url": receiver.url("/x"), "since": "2020-01-01T00:00:00Z"}
                answer = client.post(url, data=fields)
                assert answer.status_code == 403, (url, answer.status_code)
        answer = client.post("/console/endpoints/new", data={"url": receiver.url(path + "/n")})
        assert answer.status_code == 403
    assert _endpoint(gw, endpoint["id"]) == {k: v for k, v in endpoint.items() if k != "secret"}
    assert (
        gw.api.get(f"/v1/endpoints/{endpoint['id']}/secret").json()["secret"] == endpoint["secret"]
    )
    assert [e["id"] for e in gw.api.get("/v1/endpoints").json()["data"]] == [endpoint["id"]]
    assert receiver.received(path) == []


def test_the_api_and_the_list_filter_on_status_and_failing(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    receiver.set(path + "/bad", Reply(500))
    failing = make_endpoint(gw, receiver.url(path + "/bad"))
    healthy = make_endpoint(gw, receiver.url(path))
    disabled = make_endpoint(gw, receiver.url(path + "/off"), disabled=True)
    publish(gw, "invoice.paid")
    wait_until(lambda: _endpoint(gw, failing["id"])["failing_since"], 20, "a failing endpoint")

    def api_ids(query: str) -> set[str]:
        answer = gw.api.get(f"/v1/endpoints?{query}")
        assert answer.status_code == 200, answer.text
        return {e["id"] for e in answer.json()["data"]}

    assert api_ids("failing=true") == {failing["id"]}
    assert api_ids("failing=false") == {healthy["id"], disabled["id"]}
    assert api_ids("status=disabled") == {disabled["id"]}
    assert api_ids("status=enabled&failing=false") == {healthy["id"]}
    assert gw.api.get("/v1/endpoints?status=off").status_code == 422

    client, _csrf = signed_in_client(gw)
    with closing(client):

        def page_ids(query: str) -> set[str]:
            answer = client.get(f"/console/endpoints?{query}")
            assert answer.status_code == 200, answer.text
            return set(re.findall(r'href="/console/endpoints/(ep_[A-Za-z0-9]+)"', answer.text))

        assert page_ids("failing=true") == {failing["id"]}
        assert page_ids("status=disabled") == {disabled["id"]}
        assert page_ids("status=enabled&failing=false") == {healthy["id"]}


def test_the_list_pages_with_a_next_link(gw: Gateway, receiver: Receiver, path: str) -> None:
    made = {make_endpoint(gw, receiver.url(f"{path}/{n}"))["id"] for n in range(55)}
    client, _csrf = signed_in_client(gw)
    seen: set[str] = set()
    url: str | None = "/console/endpoints"
    pages = 0
    with closing(client):
        while url:
            answer: httpx.Response = client.get(url.replace("&amp;", "&"))
            assert answer.status_code == 200
            seen |= set(re.findall(r'href="/console/endpoints/(ep_[A-Za-z0-9]+)"', answer.text))
            found = re.search(r'id="next-page" href="([^"]+)"', answer.text)
            url = found.group(1) if found else None
            pages += 1
    assert seen == made and pages == 2
