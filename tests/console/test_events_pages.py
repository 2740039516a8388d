"""The console's events and deliveries: the list and its filters, an event with every
attempt of each delivery, retrying one delivery and the failed ones of a filter, on
both backends, in a real browser where what a person sees matters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.browser import screenshot
from tests.support.console import console_url, sign_in, signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import (
    create_key,
    deliveries_of,
    make_endpoint,
    publish,
    wait_delivery,
)
from tests.support.providers import CASE_BY_PROVIDER, accepted, create_source, post_in
from tests.support.receiver import Receiver, Reply, wait_until

XSS = {"note": "<script>alert(1)</script>", "avatar": "<img src=x onerror=alert(2)>"}


def _failing_then_ok(receiver: Receiver, path: str) -> None:
    receiver.set(
        path,
        Reply(503, b'{"error":"database unavailable, try again"}'),
        Reply(200, b'{"received":true}'),
    )


def _always_failing(receiver: Receiver, path: str) -> None:
    receiver.set(path, Reply(500, b'{"error":"boom"}'))


# Deliveries that fail once and for all: the bulk retry tests start from failed
# deliveries. With the tests' schedule (4 attempts), five in a row open the endpoint's
# breaker, and its half-open probes, one at a time, held those tests for 15 s.
NO_RETRIES = {"schedule": []}


def _attempt_rows(driver: Any, delivery_id: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f"article[id='{delivery_id}'] tr.attempt")  # type: ignore[no-any-return]


def _main_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "main").text)


def test_list_filter_open_an_event_and_retry_a_delivery(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    from selenium.webdriver.common.by import By

    _failing_then_ok(receiver, path)
    _always_failing(receiver, path + "/down")
    make_endpoint(gw, receiver.url(path), tenant_id="acme", event_types=["invoice.*"])
    make_endpoint(gw, receiver.url(path + "/down"), tenant_id="acme", event_types=["user.*"])
    paid = publish(
        gw,
        "invoice.paid",
        {"invoice": {"id": "in_1042", "amount": 4200, "currency": "eur"}, "customer": "cus_81"},
        tenant_id="acme",
    )
    signed_up = publish(gw, "user.created", {"user": "u_7"}, tenant_id="acme")
    [delivery] = deliveries_of(gw, paid["id"])
    [down] = deliveries_of(gw, signed_up["id"])
    wait_delivery(gw, delivery["id"], "succeeded")
    wait_delivery(gw, down["id"], "failed")

    sign_in(page, gw, then="/events")
    rows = page.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [signed_up["id"], paid["id"]]

    # Filter by type, then by delivery state, from the form.
    page.find_element(By.ID, "f-type").send_keys("invoice.paid")
    page.find_element(By.CSS_SELECTOR, "#event-filters button[type=submit]").click()
    wait_until(lambda: "type=invoice.paid" in page.current_url, 10, "the filtered list")
    text = _main_text(page)
    assert paid["id"] in text and signed_up["id"] not in text
    page.get(console_url(gw, "/events?delivery_status=failed"))
    text = _main_text(page)
    assert signed_up["id"] in text and paid["id"] not in text
    page.get(console_url(gw, "/events?delivery_status=succeeded&type=user.created"))
    assert "No events match these filters." in _main_text(page)

    # Search by an exact id: straight to the event.
    page.get(console_url(gw, "/events"))
    page.find_element(By.ID, "q").send_keys(paid["id"])
    page.find_element(By.ID, "q").submit()
    wait_until(lambda: page.current_url.endswith(f"/events/{paid['id']}"), 10, "the event")

    # The event: payload, its delivery with both attempts (the failed and the succeeded).
    assert page.find_element(By.ID, "event-type").text == "invoice.paid"
    assert '"id": "in_1042"' in page.find_element(By.ID, "payload").text
    attempts = _attempt_rows(page, delivery["id"])
    assert len(attempts) == 2
    first, second = (row.find_elements(By.TAG_NAME, "td") for row in attempts)
    assert first[2].text == "503" and "database unavailable" in first[4].text
    assert first[3].text.endswith(" ms")
    assert second[2].text == "200" and '{"received":true}' in second[4].text
    if gw.backend == "sqlite":  # one screenshot, of realistic data
        screenshot(page, "console-event.png", (1280, 1100))

    # Open the delivery, with its attempt log.
    page.find_element(By.LINK_TEXT, delivery["id"]).click()
    wait_until(lambda: page.current_url.endswith(f"/deliveries/{delivery['id']}"), 10, "delivery")
    assert len(page.find_elements(By.CSS_SELECTOR, "tr.attempt")) == 2
    page.back()

    # Retry it: the new attempt appears on the page by itself (data-live).
    button = page.find_element(By.CSS_SELECTOR, f"article[id='{delivery['id']}'] form.retry button")
    button.click()
    wait_until(lambda: "retried=" in page.current_url, 10, "the page after the retry")
    assert "queued" in page.find_element(By.ID, "retried").text
    wait_until(lambda: len(_attempt_rows(page, delivery["id"])) == 3, 30, "the third attempt")
    third = _attempt_rows(page, delivery["id"])[2].find_elements(By.TAG_NAME, "td")
    assert third[2].text == "200"
    assert len(receiver.received(path)) == 3


def test_bulk_retry_counts_first_then_follows_progress(
    page: Any, gw: Gateway, receiver: Receiver, path: str
) -> None:
    from selenium.webdriver.common.by import By

    _always_failing(receiver, path)
    make_endpoint(gw, receiver.url(path), event_types=["order.*"], retry_policy=NO_RETRIES)
    disabled = make_endpoint(
        gw, receiver.url(path + "/off"), event_types=["order.*"], retry_policy=NO_RETRIES
    )
    receiver.set(path + "/off", Reply(500))
    events = [publish(gw, "order.placed", {"n": n}) for n in range(3)]
    other = publish(gw, "user.created")  # no endpoint takes it
    failed = [d for e in events for d in deliveries_of(gw, e["id"])]
    assert len(failed) == 6
    for d in failed:
        wait_delivery(gw, d["id"], "failed", timeout=30)
    assert (
        gw.api.patch(f"/v1/endpoints/{disabled['id']}", json={"disabled": True}).status_code == 200
    )

    sign_in(page, gw)
    page.get(console_url(gw, "/events?type=order.placed&delivery_status=failed"))
    assert other["id"] not in _main_text(page)
    page.find_element(By.ID, "bulk-retry").click()
    wait_until(lambda: "/events/retry-failed?" in page.current_url, 10, "the count page")
    assert page.find_element(By.ID, "retry-count").text.startswith("3 failed deliveries")
    assert (
        "3 failed deliveries go to disabled endpoints"
        in page.find_element(By.ID, "retry-disabled").text
    )
    # Counting changed nothing.
    assert all(gw.api.get(f"/v1/deliveries/{d['id']}").json()["status"] == "failed" for d in failed)

    receiver.set(path, Reply(200))
    page.find_element(By.ID, "confirm-retry").click()
    wait_until(lambda: "/retry-failed/progress" in page.current_url, 10, "the progress page")
    assert page.find_element(By.ID, "requeued").text.startswith("3 failed deliveries")
    wait_until(
        lambda: (
            page.find_elements(By.ID, "progress-done")
            and page.find_element(By.ID, "progress-succeeded").text == "3"
        ),
        30,
        "the progress page to show all three succeeded",
    )
    statuses = sorted(gw.api.get(f"/v1/deliveries/{d['id']}").json()["status"] for d in failed)
    assert statuses == ["failed"] * 3 + ["succeeded"] * 3  # the disabled endpoint's: left


def test_bulk_retry_is_bounded_and_without_csrf_changes_nothing(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    _always_failing(receiver, path)
    make_endpoint(gw, receiver.url(path))
    event = publish(gw, "order.placed")
    [delivery] = deliveries_of(gw, event["id"])
    wait_delivery(gw, delivery["id"], "failed", timeout=30)
    client, csrf = signed_in_client(gw)
    attempts = gw.api.get(f"/v1/deliveries/{delivery['id']}").json()["attempt_count"]

    for url, data in (
        ("/console/events/retry-failed", {"type": "order.placed"}),
        (f"/console/deliveries/{delivery['id']}/retry", {}),
    ):
        for forged in ({}, {"csrf_token": "forged"}):
            refused = client.post(url, data={**data, **forged})
            assert refused.status_code == 403, (url, refused.text)
            assert "nothing was changed" in refused.text
    after = gw.api.get(f"/v1/deliveries/{delivery['id']}").json()
    assert after["status"] == "failed" and after["attempt_count"] == attempts

    # The count page's form repeats the filter; with the token, it retries.
    confirm = client.get("/console/events/retry-failed", params={"type": "order.placed"})
    assert 'name="type" value="order.placed"' in confirm.text
    done = client.post(
        "/console/events/retry-failed", data={"type": "order.placed", "csrf_token": csrf}
    )
    assert done.status_code == 303 and "requeued=1" in done.headers["location"]
    wait_until(
        lambda: gw.api.get(f"/v1/deliveries/{delivery['id']}").json()["attempt_count"] > attempts,
        20,
        "another attempt",
    )


def test_a_received_event_shows_the_request_as_it_came(page: Any, gw: Gateway) -> None:
    from selenium.webdriver.common.by import By

    case = CASE_BY_PROVIDER["stripe"]
    source = create_source(gw, case)
    body, headers = case.signed(case.new_id())
    event_id = accepted(post_in(gw, source, body, headers))

    sign_in(page, gw, then=f"/events/{event_id}")
    assert "stripe" in page.find_element(By.ID, "verification").text
    header_rows = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[1].text
        for row in page.find_elements(By.CSS_SELECTOR, "#received-headers tbody tr")
    }
    assert header_rows["stripe-signature"] == headers["Stripe-Signature"]
    assert page.find_element(By.ID, "received-body").text == body.decode()
    assert source["id"] in page.find_element(By.TAG_NAME, "main").text
    # The list filters on the source.
    page.get(console_url(gw, f"/events?source_id={source['id']}"))
    assert event_id in _main_text(page)


def test_markup_in_an_event_is_shown_as_text_and_runs_nothing(page: Any, gw: Gateway) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    event = publish(gw, "user.created", XSS, tenant_id="<b>t</b>")
    sign_in(page, gw, then="/events")
    assert "<b>t</b>" in _main_text(page)
    page.get(console_url(gw, f"/events/{event['id']}"))
    shown = page.find_element(By.ID, "payload").text
    assert XSS["note"] in shown and XSS["avatar"] in shown
    main = page.find_element(By.TAG_NAME, "main")
    assert main.find_elements(By.TAG_NAME, "img") == []
    assert main.find_elements(By.TAG_NAME, "script") == []
    assert main.find_elements(By.TAG_NAME, "b") == []
    try:
        alert = page.switch_to.alert
        raise AssertionError(f"an alert ran: {alert.text}")
    except NoAlertPresentException:
        pass


def test_a_tenant_sees_only_its_own_events_and_deliveries(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    make_endpoint(gw, receiver.url(path + "/a"), tenant_id="acme")
    make_endpoint(gw, receiver.url(path + "/g"), tenant_id="globex")
    mine = publish(gw, "invoice.paid", tenant_id="acme")
    theirs = publish(gw, "invoice.paid", tenant_id="globex")
    [my_delivery] = deliveries_of(gw, mine["id"])
    [their_delivery] = deliveries_of(gw, theirs["id"])
    wait_delivery(gw, their_delivery["id"], "succeeded")
    key = create_key(gw, name="acme", tenant_id="acme")["key"]
    client, csrf = signed_in_client(gw, key)

    listed = client.get("/console/events", params={"tenant_id": "globex"})
    assert mine["id"] in listed.text and theirs["id"] not in listed.text  # own tenant only
    assert client.get(f"/console/events/{mine['id']}").status_code == 200
    assert client.get(f"/console/deliveries/{my_delivery['id']}").status_code == 200
    for url in (
        f"/console/events/{theirs['id']}",
        f"/console/deliveries/{their_delivery['id']}",
        "/console/events/evt_does_not_exist",
        "/console/deliveries/not-an-id%00",
    ):
        answer = client.get(url)
        assert answer.status_code == 404, (url, answer.status_code)
        assert "not found" in answer.text
    searched = client.get("/console/events", params={"q": theirs["id"]})
    assert searched.status_code == 404 and "No event or delivery has the id" in searched.text
    retried = client.post(
        f"/console/deliveries/{their_delivery['id']}/retry", data={"csrf_token": csrf}
    )
    assert retried.status_code == 404
    assert gw.sql(
        f"SELECT status, attempt_count FROM delivery WHERE id = '{their_delivery['id']}'"
    ) == [("succeeded", 1)]


def test_bad_filters_are_named_not_a_500(gw: Gateway) -> None:
    client, _csrf = signed_in_client(gw)
    answer = client.get("/console/events", params={"since": "yesterday", "delivery_status": "x"})
    assert answer.status_code == 400
    assert (
        "not a date and time" in answer.text and "one of failed, pending, succeeded" in answer.text
    )
    later = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    earlier = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    backwards = client.get("/console/events", params={"since": later, "until": earlier})
    assert backwards.status_code == 400 and "must be after" in backwards.text
    nul = client.get("/console/events", params={"type": "a\x00b", "tenant_id": "\x00"})
    assert nul.status_code == 400 and "must not contain a NUL character" in nul.text
    edge = client.get("/console/events", params={"until": "9999-12-31T23:59:59-10:00"})
    assert edge.status_code == 400 and "not a date and time" in edge.text
    lost = client.get(
        "/console/events/retry-failed/progress", params={"at": "9999-12-31T23:59:59-10:00"}
    )
    assert lost.status_code == 303


def test_the_api_lists_events_by_time_and_delivery_state(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    _always_failing(receiver, path + "/down")
    make_endpoint(gw, receiver.url(path), event_types=["ok.*"])
    make_endpoint(gw, receiver.url(path + "/down"), event_types=["bad.*"])
    good = publish(gw, "ok.event")
    bad = publish(gw, "bad.event")
    wait_delivery(gw, deliveries_of(gw, good["id"])[0]["id"], "succeeded")
    wait_delivery(gw, deliveries_of(gw, bad["id"])[0]["id"], "failed", timeout=30)

    def ids(**params: str) -> list[str]:
        answer = gw.api.get("/v1/events", params=params)
        assert answer.status_code == 200, answer.text
        return [e["id"] for e in answer.json()["data"]]

    assert ids(delivery_status="failed") == [bad["id"]]
    assert ids(delivery_status="succeeded") == [good["id"]]
    assert ids(delivery_status="pending") == []
    created = datetime.fromisoformat(bad["created_at"].replace("Z", "+00:00"))
    assert ids(since=bad["created_at"]) == [bad["id"]]
    assert ids(until=bad["created_at"]) == [good["id"]]
    assert set(ids(since=(created - timedelta(minutes=5)).isoformat())) == {good["id"], bad["id"]}
    refused = gw.api.get("/v1/events", params={"delivery_status": "lost"})
    assert refused.status_code == 422 and "delivery_status" in refused.text
    for bad_time in ("soon", "9999-12-31T23:59:59-10:00"):  # the second: past UTC's edge
        assert gw.api.get("/v1/events", params={"since": bad_time}).status_code == 422


def test_pages_answer_only_signed_in(gw: Gateway) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}") as stranger:
        for url in ("/console/events", "/console/events/evt_x", "/console/deliveries/dlv_x"):
            answer = stranger.get(url)
            assert answer.status_code == 303 and "/console/login" in answer.headers["location"]
        assert re.search(
            "/console/login",
            stranger.post("/console/deliveries/dlv_x/retry").headers.get("location", ""),
        )


async def _bulk(gw: Gateway, limit: int) -> tuple[Any, Any, Any, Any]:
    """The bulk service as the console calls it, with a small limit and batch."""
    from gateway.commands.dispatching import CommandDispatcher
    from gateway.db import create_engine, create_sessionmaker
    from gateway.outbound import bulk
    from gateway.outbound.reads import EventFilter
    from gateway.settings import Settings

    settings = Settings(
        database_url=gw.database_url,
        redis_url=gw.redis_url,
        queue_name=getattr(gw, "queue", "arq:queue"),
    )
    engine = create_engine(settings)
    dispatcher = CommandDispatcher(settings)
    events = EventFilter(event_type="order.placed")
    try:
        async with create_sessionmaker(engine)() as session:
            counted = await bulk.count_failed(session, events, limit=limit)
            batch, bulk.BATCH = bulk.BATCH, 2  # several batches
            try:
                done = await bulk.retry_failed(session, dispatcher, events, limit=limit)
            finally:
                bulk.BATCH = batch
            after = await bulk.count_failed(session, events, limit=limit)
            progress = await bulk.retry_progress(session, events, done.at)
        return counted, done, after, progress
    finally:
        await dispatcher.close()
        await engine.dispose()


def test_bulk_retry_takes_at_most_its_limit_oldest_first(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    import asyncio

    _always_failing(receiver, path)
    # Five failures in a row: its breaker is open when the bulk retry closes it.
    make_endpoint(gw, receiver.url(path), retry_policy=NO_RETRIES)
    events = [publish(gw, "order.placed", {"n": n}) for n in range(5)]
    deliveries = [deliveries_of(gw, e["id"])[0]["id"] for e in events]
    for delivery_id in deliveries:
        wait_delivery(gw, delivery_id, "failed", timeout=30)
    receiver.set(path, Reply(200))

    counted, done, after, progress = asyncio.run(_bulk(gw, limit=3))
    assert (counted.retryable, counted.over_limit, counted.to_disabled) == (4, True, 0)
    assert (done.requeued, done.more_left) == (3, True)
    assert after.retryable == 2 and not after.over_limit
    assert progress.failed == 0 and progress.pending + progress.succeeded == 3
    for delivery_id in deliveries[:3]:  # the oldest
        wait_delivery(gw, delivery_id, "succeeded")
    assert [gw.api.get(f"/v1/deliveries/{d}").json()["status"] for d in deliveries[3:]] == [
        "failed",
        "failed",
    ]


def test_the_list_pages_with_a_cursor_keeping_its_filters(gw: Gateway) -> None:
    published = [publish(gw, "page.test", {"n": n})["id"] for n in range(51)]
    publish(gw, "other.type")
    client, _csrf = signed_in_client(gw)
    first = client.get("/console/events", params={"type": "page.test"})
    shown = re.findall(r'href="/console/events/(evt_\w+)"', first.text)
    assert shown == published[::-1][:50]
    link = re.search(r'id="next-page" href="([^"]+)"', first.text)
    assert link is not None
    second = client.get(link[1].replace("&amp;", "&"))
    assert re.findall(r'href="/console/events/(evt_\w+)"', second.text) == [published[0]]
    assert 'id="next-page"' not in second.text
