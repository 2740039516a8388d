"""`gateway endpoints create --retry-policy --contact-email`: checked as the API checks
them (a usage error naming the option), stored and shown with the endpoint."""

from __future__ import annotations

import json

from tests.cli.test_cli_commands import ok, refused
from tests.support.gateway import Gateway
from tests.support.receiver import Receiver


def test_create_with_a_retry_policy_and_a_contact(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    policy = {"schedule": [10, 60], "final_statuses": [404], "disable_after_failures": 50}
    created = json.loads(
        ok(
            gw.run_cli(
                "endpoints",
                "create",
                receiver.url(path),
                "--retry-policy",
                json.dumps(policy),
                "--contact-email",
                "oncall@example.com",
                "--json",
            )
        ).stdout
    )
    assert created["retry_policy"] == {**policy, "max_duration": None}
    shown = gw.api.get(f"/v1/endpoints/{created['id']}").json()
    assert shown["retry_policy"] == created["retry_policy"]
    assert shown["contact_email"] == "oncall@example.com"
    printed = ok(
        gw.run_cli(
            "endpoints", "create", receiver.url(path), "--contact-email", "oncall@example.com"
        )
    ).stdout
    assert "contact email" in printed and "oncall@example.com" in printed
    for bad in ('{"schedule": [-1]}', "{not json"):
        refused(
            gw.run_cli("endpoints", "create", receiver.url(path), "--retry-policy", bad),
            2,
            "--retry-policy",
        )
    refused(
        gw.run_cli("endpoints", "create", receiver.url(path), "--contact-email", "nobody"),
        2,
        "--contact-email",
    )
    assert len(gw.api.get("/v1/endpoints").json()["data"]) == 2
