"""`gateway endpoints create --signature-scheme`: the scheme is checked as the API checks
it, and shown with the endpoint."""

from __future__ import annotations

import json

from tests.cli.test_cli_commands import ok, refused
from tests.support.gateway import Gateway
from tests.support.receiver import Receiver


def test_create_with_a_signature_scheme(gw: Gateway, receiver: Receiver, path: str) -> None:
    created = json.loads(
        ok(
            gw.run_cli(
                "endpoints", "create", receiver.url(path), "--signature-scheme", "github", "--json"
            )
        ).stdout
    )
    assert created["signature"] == {"scheme": "github"}
    assert gw.api.get(f"/v1/endpoints/{created['id']}").json()["signature"] == {"scheme": "github"}
    refused(
        gw.run_cli("endpoints", "create", receiver.url(path), "--signature-scheme", "md5"),
        2,
        "--signature-scheme",
    )
    assert len(gw.api.get("/v1/endpoints").json()["data"]) == 1
