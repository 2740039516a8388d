"""The endpoint form's order of one key's events: chosen on create, shown on the
endpoint's page, kept and changed on edit; a value the form does not offer is refused."""

from __future__ import annotations

from contextlib import closing

from tests.support.console import signed_in_client
from tests.support.gateway import Gateway
from tests.support.receiver import Receiver


def test_the_form_sets_the_order_and_the_page_shows_it(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    client, csrf = signed_in_client(gw)
    with closing(client):
        fields = {"csrf_token": csrf, "url": receiver.url(path), "origin": "all"}
        refused = client.post("/console/endpoints/new", data={**fields, "ordered": "yes"})
        assert refused.status_code == 422
        assert 'id="ordered-errors"' in refused.text
        assert gw.api.get("/v1/endpoints").json()["data"] == []

        created = client.post("/console/endpoints/new", data={**fields, "ordered": "strict"})
        assert created.status_code == 303, created.text
        [endpoint] = gw.api.get("/v1/endpoints").json()["data"]
        assert endpoint["ordered"] == "strict"
        url = f"/console/endpoints/{endpoint['id']}"
        assert "strictly in order" in client.get(url).text
        assert '<option value="strict" selected>' in client.get(f"{url}/edit").text

        changed = client.post(f"{url}/edit", data={**fields, "ordered": "true"})
        assert changed.status_code == 303, changed.text
        assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["ordered"] is True
        assert "in order, one at a time per key" in client.get(url).text
        assert '<option value="true" selected>' in client.get(f"{url}/edit").text

        # A form without the field (the default choice) leaves the endpoint unordered.
        plain = client.post(f"{url}/edit", data=fields)
        assert plain.status_code == 303, plain.text
        assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["ordered"] is False
        assert '<option value="false" selected>' in client.get(f"{url}/edit").text
