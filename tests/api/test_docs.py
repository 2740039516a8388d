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
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import chromium, requested_urls
from tests.support.dns import ScriptedDNS
from tests.support.gateway import Gateway, own_gateway
from tests.support.helpers import anonymous_client, make_endpoint, publish
from tests.support.receiver import Receiver, wait_until

# The browser reaches the gateway by a name that is not loopback's: a page that would
# fetch something only for non-local hosts (Swagger UI's validator badge does) shows it.
DOCS_HOST = "gateway.test"


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
    return chromium(DOCS_HOST)


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
            elsewhere = foreign(requested_urls(driver))
            raise AssertionError(f"{exc}; requested elsewhere: {elsewhere}") from None
        errors = driver.find_elements(By.CSS_SELECTOR, ".errors-wrapper")
        assert not errors, errors[0].text
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        requested = requested_urls(driver)
    finally:
        driver.quit()
    assert f"{origin}/openapi.json" in loaded, loaded
    assert f"{origin}/docs/assets/swagger-ui-bundle.js" in requested, requested
    outside = foreign([*loaded, *requested])
    assert not outside, f"/docs fetched from outside the gateway: {outside}"


def test_docs_pages_are_public(docs_gateway: Gateway) -> None:
    with anonymous_client(docs_gateway) as client:
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            assert client.get(path).status_code == 200, path
        page = client.get("/docs").text
        assert "cdn." not in page and "https://" not in page, page


# --- the document


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A validator for a schema of the document, its `$ref`s resolved in the document."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": document["components"]}, validate_formats=True
    )


def _media_examples(media: dict[str, Any]) -> list[Any]:
    if "example" in media:
        return [media["example"]]
    return [named["value"] for named in media.get("examples", {}).values()]


def _all_operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from _operations(document)
    for name, item in document.get("webhooks", {}).items():
        for method, operation in item.items():
            yield f"webhook {method.upper()} {name}", operation


def test_every_field_is_described(document: dict[str, Any]) -> None:
    undescribed = []
    for name, schema in document["components"]["schemas"].items():
        assert schema.get("properties"), f"{name} has no properties"
        for field, prop in schema["properties"].items():
            text = (prop.get("description") or "").strip()
            # A description that only repeats the field's name teaches nothing.
            if len(text) < 12 or text.lower().rstrip(".") == field.replace("_", " "):
                undescribed.append(f"{name}.{field}")
    assert not undescribed, f"fields without a real description: {undescribed}"
    for label, operation in _all_operations(document):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), f"{label}: parameter {parameter['name']}"


def test_every_operation_has_examples(document: dict[str, Any]) -> None:
    missing = []
    for label, operation in _all_operations(document):
        for code, response in operation["responses"].items():
            if not code.startswith("2"):
                continue
            for media_type, media in response.get("content", {}).items():
                if not _media_examples(media):
                    missing.append(f"{label} {code} {media_type}")
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            if not _media_examples(media):
                missing.append(f"{label} request {media_type}")
    assert not missing, f"no example: {missing}"


def test_examples_are_valid(document: dict[str, Any]) -> None:
    checked = 0
    invalid = []

    def check(where: str, schema: dict[str, Any], example: Any) -> None:
        nonlocal checked
        checked += 1
        errors = [e.message for e in _validator(document, schema).iter_errors(example)]
        if errors:
            invalid.append(f"{where}: {errors[:3]}")

    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            check(f"schema {name}", {"$ref": f"#/components/schemas/{name}"}, example)
    for label, operation in _all_operations(document):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(code, response) for code, response in operation["responses"].items()]
        for where, body in bodies:
            for media_type, media in body.get("content", {}).items():
                if "schema" not in media:
                    continue  # text (Prometheus)
                for example in _media_examples(media):
                    check(f"{label} {where} {media_type}", media["schema"], example)
        for parameter in operation.get("parameters", []):
            for example in parameter["schema"].get("examples", []):
                check(f"{label} {parameter['name']}", parameter["schema"], example)
    assert not invalid, "\n".join(invalid)
    assert checked > 60, checked


def test_request_examples_pass_the_gateways_own_checks() -> None:
    """Beyond the document's schema: the validators that the schema cannot express (a
    `whsec_` secret's length, a provider's options) accept every request example."""
    import gateway.main  # noqa: F401  (every route, so every request model)
    from gateway.validation import Input

    models = []
    pending = list(Input.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        models.append(model)
    examples = 0
    for model in models:
        extra = model.model_config.get("json_schema_extra")
        for example in extra.get("examples", []) if isinstance(extra, dict) else []:
            model.model_validate(example)
            examples += 1
    assert examples >= 8


def test_each_route_declares_the_answers_it_can_give(document: dict[str, Any]) -> None:
    problems = []
    for label, operation in _operations(document):
        method, path = label.split(" ", 1)
        codes = set(operation["responses"])
        takes_json = "application/json" in operation.get("requestBody", {}).get("content", {})
        inbound = path.startswith("/in/")
        expected = {
            # Only a body labelled otherwise than JSON, where JSON is taken.
            "415": takes_json,
            # The body limit matters only where a body is read.
            "413": takes_json or inbound,
            # Something to be malformed: a parameter or a body.
            "422": bool(operation.get("parameters") or takes_json),
        }
        for code, wanted in expected.items():
            if (code in codes) != wanted:
                problems.append(f"{label}: {code} {'missing' if wanted else 'not possible'}")
        if "404" in codes and "{" not in path:
            problems.append(f"{label}: 404 without anything looked up")
        if "409" in codes and method not in ("POST", "PATCH"):
            problems.append(f"{label}: 409 on a read")
        if operation.get("security"):
            if not {"401", "429", "503"} <= codes:
                problems.append(f"{label}: 401, 429 and 503 apply to every API key")
            admin_only = path.startswith(("/v1/sources", "/v1/api-keys", "/v1/portal-links"))
            # Every key reads the event-type catalogue; only admin keys change it.
            admin_only |= path.startswith("/v1/event-types") and method != "GET"
            if ("403" in codes) != admin_only:
                problems.append(f"{label}: 403 is for the admin-only routes")
    assert not problems, "\n".join(problems)
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200"}


def test_webhooks_describe_what_an_endpoint_receives(
    docs_gateway: Gateway, receiver: Receiver, document: dict[str, Any]
) -> None:
    from standardwebhooks import Webhook

    [operation] = document["webhooks"]["event"].values()
    payload = operation["requestBody"]["content"]["application/json"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(headers)
    assert {"2XX", "410", "429", "503", "default"} == set(operation["responses"])
    # The documented signature is the example body's, under the example secret.
    from gateway.outbound.schemas import SECRET_EXAMPLE

    example = payload["example"]
    signed = Webhook(SECRET_EXAMPLE).sign(
        example["id"],
        datetime.fromtimestamp(headers["webhook-timestamp"]["schema"]["examples"][0], UTC),
        json.dumps(example, separators=(",", ":")),
    )
    assert headers["webhook-signature"]["schema"]["examples"] == [signed]

    # And what a real endpoint receives is what the document says.
    path = "/docs-webhook"
    endpoint = make_endpoint(docs_gateway, receiver.url(path))
    event = publish(docs_gateway, "docs.checked", {"invoice": "in_42", "amount": 1200})
    [request] = receiver.wait_for(path, 1)
    body = json.loads(request.body)
    errors = [e.message for e in _validator(document, payload["schema"]).iter_errors(body)]
    assert not errors, errors
    assert body["id"] == event["id"] == request.headers["webhook-id"]
    for name, parameter in headers.items():
        assert name in request.headers, f"{name} is documented but not sent"
        value: Any = request.headers[name]
        if parameter["schema"].get("type") == "integer":
            value = int(value)
        assert _validator(document, parameter["schema"]).is_valid(value), (name, value)
    Webhook(endpoint["secret"]).verify(request.body, request.headers)


# --- bodies not labelled JSON


def test_a_body_not_labelled_json_is_a_415(gw: Gateway, receiver: Receiver) -> None:
    body = json.dumps({"type": "invoice.paid", "data": {"n": 1}}).encode()
    for headers in ({"Content-Type": "text/plain"}, {}):
        response = gw.api.post("/v1/events", content=body, headers=headers)
        assert response.status_code == 415, response.text
        detail = response.json()["detail"]
        assert "content-type: application/json" in detail, detail
        assert ("text/plain" in detail) == bool(headers), detail
    assert gw.sql("SELECT count(*) FROM event") == [(0,)]
    # Every route that takes JSON says the same, before looking anything up.
    document = gw.api.get("/openapi.json").json()
    for label, operation in _operations(document):
        if "requestBody" in operation and not label.startswith("POST /in/"):
            method, path = label.split(" ", 1)
            url = path.replace("{", "").replace("}", "")  # ids that do not exist
            response = gw.api.request(
                method, url, content=b"{}", headers={"Content-Type": "text/plain"}
            )
            assert response.status_code == 415, (label, response.text)
    assert gw.sql("SELECT count(*) FROM endpoint") == [(0,)]
    # JSON under its other labels is still JSON; a body that may be left out still may.
    response = gw.api.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 202, response.text
    endpoint = make_endpoint(gw, receiver.url("/docs-rotate"))
    response = gw.api.post(f"/v1/endpoints/{endpoint['id']}/secret/rotate")
    assert response.status_code == 200, response.text
