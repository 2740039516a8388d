"""`gateway endpoints create --transformation FILE`: the code is read from the file,
checked as the API checks it, and shown with the endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_commands import ok, refused
from tests.support.gateway import Gateway
from tests.support.receiver import Receiver

CODE = "function handler(webhook) {\n  webhook.payload.seen = true;\n  return webhook;\n}\n"


def test_create_with_a_transformation_from_a_file(
    gw: Gateway, receiver: Receiver, path: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.js"
    good.write_text(CODE)
    created = json.loads(
        ok(
            gw.run_cli(
                "endpoints", "create", receiver.url(path), "--transformation", str(good), "--json"
            )
        ).stdout
    )
    assert created["transformation"] == CODE
    assert gw.api.get(f"/v1/endpoints/{created['id']}").json()["transformation"] == CODE

    bad = tmp_path / "bad.js"
    bad.write_text("function handler(webhook) {\n  return webhook +;\n}\n")
    refused(
        gw.run_cli("endpoints", "create", receiver.url(path), "--transformation", str(bad)),
        2,
        "--transformation",
        "line 2: SyntaxError",
    )
    refused(
        gw.run_cli(
            "endpoints", "create", receiver.url(path), "--transformation", str(tmp_path / "no")
        ),
        2,
        "--transformation",
        "cannot read",
    )
    assert len(gw.api.get("/v1/endpoints").json()["data"]) == 1
