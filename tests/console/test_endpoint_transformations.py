"""The endpoint form's transformation: saved when it compiles, else refused with the
JavaScript error beside the field; shown again to edit; emptied, removed."""

from __future__ import annotations

from contextlib import closing

from tests.support.console import signed_in_client
from tests.support.gateway import Gateway
from tests.support.receiver import Receiver

CODE = "function handler(webhook) {\n  webhook.payload.seen = true;\n  return webhook;\n}"


def test_the_form_saves_a_transformation_that_compiles(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    client, csrf = signed_in_client(gw)
    with closing(client):
        fields = {"csrf_token": csrf, "url": receiver.url(path), "origin": "all"}
        refused = client.post(
            "/console/endpoints/new", data={**fields, "transformation": "function handler("}
        )
        assert refused.status_code == 422
        assert 'id="transformation-errors"' in refused.text and "SyntaxError" in refused.text
        assert "function handler(</textarea>" in refused.text  # kept as typed
        assert gw.api.get("/v1/endpoints").json()["data"] == []

        created = client.post("/console/endpoints/new", data={**fields, "transformation": CODE})
        assert created.status_code == 303, created.text
        [endpoint] = gw.api.get("/v1/endpoints").json()["data"]
        assert endpoint["transformation"] == CODE

        form = client.get(f"/console/endpoints/{endpoint['id']}/edit")
        assert "webhook.payload.seen = true;" in form.text
        shown = client.get(f"/console/endpoints/{endpoint['id']}")
        assert 'id="endpoint-transformation"><pre>function handler(webhook) {' in shown.text

        emptied = client.post(
            f"/console/endpoints/{endpoint['id']}/edit", data={**fields, "transformation": ""}
        )
        assert emptied.status_code == 303, emptied.text
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()["transformation"] is None
