"""The console and the portal with a stream endpoint (`gateway listen`'s): shown without a
URL, and edited without one."""

from __future__ import annotations

from contextlib import closing

from tests.support.console import signed_in_client
from tests.support.gateway import Gateway

SHOWN = "stream: read by gateway listen"


def test_a_stream_endpoint_is_shown_and_edited_without_a_url(gw: Gateway) -> None:
    created = gw.api.post("/v1/endpoints", json={"kind": "stream", "description": "laptop"})
    endpoint = created.json()
    client, csrf = signed_in_client(gw)
    with closing(client):
        for page in ("", f"/{endpoint['id']}", f"/{endpoint['id']}/edit"):
            answer = client.get(f"/console/endpoints{page}")
            assert answer.status_code == 200, answer.text
            assert "None" not in answer.text.replace("none", "")
        assert SHOWN in client.get(f"/console/endpoints/{endpoint['id']}").text
        assert 'name="url"' not in client.get(f"/console/endpoints/{endpoint['id']}/edit").text
        saved = client.post(
            f"/console/endpoints/{endpoint['id']}/edit",
            data={"csrf_token": csrf, "description": "my laptop", "event_types": "order.*"},
        )
        assert saved.status_code == 303, saved.text
    shown = gw.api.get(f"/v1/endpoints/{endpoint['id']}").json()
    assert (shown["kind"], shown["url"], shown["description"]) == ("stream", None, "my laptop")
    assert shown["event_types"] == ["order.*"]
