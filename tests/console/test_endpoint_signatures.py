"""The endpoint form's signature scheme: chosen on create, shown on the endpoint's page,
changed on edit; an edit that leaves the scheme keeps its `hmac` options."""

from __future__ import annotations

from contextlib import closing

from tests.support.console import signed_in_client
from tests.support.gateway import Gateway
from tests.support.receiver import Receiver


def test_the_form_chooses_the_scheme_and_the_page_shows_it(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    client, csrf = signed_in_client(gw)
    with closing(client):
        fields = {"csrf_token": csrf, "url": receiver.url(path), "origin": "all"}
        refused = client.post("/console/endpoints/new", data={**fields, "signature_scheme": "md5"})
        assert refused.status_code == 422
        assert 'id="signature-errors"' in refused.text
        assert gw.api.get("/v1/endpoints").json()["data"] == []

        created = client.post(
            "/console/endpoints/new", data={**fields, "signature_scheme": "stripe"}
        )
        assert created.status_code == 303, created.text
        [endpoint] = gw.api.get("/v1/endpoints").json()["data"]
        assert endpoint["signature"] == {"scheme": "stripe"}
        shown = client.get(f"/console/endpoints/{endpoint['id']}")
        assert 'id="endpoint-signature"><code>stripe</code>' in shown.text
        form = client.get(f"/console/endpoints/{endpoint['id']}/edit")
        assert '<option value="stripe" selected>' in form.text

        url = f"/v1/endpoints/{endpoint['id']}"
        gw.api.patch(url, json={"signature": {"scheme": "hmac", "algorithm": "sha1"}})
        kept = client.post(
            f"/console/endpoints/{endpoint['id']}/edit",
            data={**fields, "signature_scheme": "hmac", "description": "kept"},
        )
        assert kept.status_code == 303, kept.text
        assert gw.api.get(url).json()["signature"]["algorithm"] == "sha1"
        shown = client.get(f"/console/endpoints/{endpoint['id']}")
        assert "sha1" in shown.text and "X-Webhook-Signature" in shown.text

        changed = client.post(
            f"/console/endpoints/{endpoint['id']}/edit",
            data={**fields, "signature_scheme": "standard"},
        )
        assert changed.status_code == 303, changed.text
    assert gw.api.get(url).json()["signature"] == {"scheme": "standard"}
