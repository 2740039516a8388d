"""`gateway sources ...` as an operator runs it, checked through the API and the inbound URL
of the running gateway, on both backends."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any, get_args

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.commands.sources import PROVIDERS
from gateway.inbound.schemas import Provider
from tests.cli.test_cli_commands import as_json, ok, refused, with_stdin
from tests.support.gateway import Gateway
from tests.support.helpers import anonymous_client
from tests.support.receiver import wait_until

SECRET = "cli-github-secret-do-not-print-1"
NEW_SECRET = "cli-github-secret-do-not-print-2"
UNKNOWN = "src_01NOSUCHSOURCE000000000000"


def github_post(
    client: httpx.Client, source: dict[str, Any], secret: str, body: dict[str, Any]
) -> httpx.Response:
    raw = json.dumps(body).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return client.post(
        source["ingest_path"],
        content=raw,
        headers={
            "X-Hub-Signature-256": f"sha256={signature}",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )


def create(gw: Gateway, *args: str) -> dict[str, Any]:
    result = ok(gw.run_cli("sources", "create", *args, "--json"))
    assert SECRET not in result.stdout + result.stderr  # never printed back
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_create_list_and_show_with_what_it_received(gw: Gateway) -> None:
    source = create(gw, "GitHub: acme/api", "--provider", "github", "--secret", SECRET)
    assert source["name"] == "GitHub: acme/api" and source["provider"] == "github"
    assert source["ingest_path"] == f"/in/{source['id']}" and source["disabled"] is False
    assert "secret" not in source
    # The API shows the same source, verifying with the secret given.
    assert gw.api.get(f"/v1/sources/{source['id']}").json() == source
    assert gw.api.get(f"/v1/sources/{source['id']}/secret").json() == {"secret": SECRET}

    hmac_source = create(
        gw,
        "partner",
        "--provider",
        "hmac",
        "--secret",
        SECRET,
        "--options",
        '{"header": "X-Signature", "prefix": "sha256="}',
        "--tolerance-seconds",
        "60",
        "--rate-limit",
        "5",
        "--deduplicate-body",
        "yes",
        "--disabled",
    )
    assert hmac_source["options"]["header"] == "X-Signature"
    assert hmac_source["options"]["prefix"] == "sha256="
    assert hmac_source["tolerance_seconds"] == 60 and hmac_source["rate_limit"] == 5
    assert hmac_source["deduplicate_body"] is True and hmac_source["disabled"] is True

    listed = as_json(gw, "sources", "list")
    assert listed == gw.api.get("/v1/sources").json()
    assert [s["id"] for s in listed["data"]] == [hmac_source["id"], source["id"]]
    first = as_json(gw, "sources", "list", "--limit", "1")
    assert [s["id"] for s in first["data"]] == [hmac_source["id"]]
    rest = as_json(gw, "sources", "list", "--limit", "1", "--cursor", first["next_cursor"])
    assert [s["id"] for s in rest["data"]] == [source["id"]] and rest["next_cursor"] is None
    table = ok(gw.run_cli("sources", "list")).stdout
    assert source["id"] in table and "disabled" in table and source["ingest_path"] in table

    shown = as_json(gw, "sources", "show", source["id"])
    assert shown == {**source, "recent_events": []}
    assert "no events received yet" in ok(gw.run_cli("sources", "show", source["id"])).stderr

    with anonymous_client(gw) as client:
        accepted = github_post(client, source, SECRET, {"ref": "main"})
    assert accepted.status_code == 200, accepted.text
    event_id = accepted.json()["event_id"]
    shown = as_json(gw, "sources", "show", source["id"])
    [received] = shown["recent_events"]
    detail = gw.api.get(f"/v1/events/{event_id}").json()
    assert received["id"] == event_id and received["type"] == detail["type"] == "push"
    assert received["source_id"] == source["id"]
    assert received["verification"] == detail["verification"] and detail["verification"]
    assert as_json(gw, "sources", "show", source["id"], "--recent", "0")["recent_events"] == []
    table = ok(gw.run_cli("sources", "show", source["id"])).stdout
    assert event_id in table and detail["verification"] in table
    assert source["ingest_path"] in table and SECRET not in table


def test_update_enable_disable_and_delete(gw: Gateway) -> None:
    source = create(gw, "GitHub", "--provider", "github", "--secret", SECRET)
    updated = as_json(
        gw,
        "sources",
        "update",
        source["id"],
        "--name",
        "renamed",
        "--rate-limit",
        "7",
        "--deduplicate-body",
        "no",
    )
    assert updated["name"] == "renamed" and updated["rate_limit"] == 7
    assert updated["deduplicate_body"] is False and updated["provider"] == "github"
    assert gw.api.get(f"/v1/sources/{source['id']}").json() == updated
    # Back to the configured rate and the provider's choice (on for github).
    reset = as_json(
        gw,
        "sources",
        "update",
        source["id"],
        "--rate-limit",
        "default",
        "--deduplicate-body",
        "default",
    )
    assert reset["rate_limit"] is None and reset["deduplicate_body"] is True

    # A new secret from stdin, kept out of the command line; the running server takes it.
    result = with_stdin(gw, NEW_SECRET + "\n", "sources", "update", source["id"], "--secret", "-")
    ok(result)
    assert NEW_SECRET not in result.stdout + result.stderr
    assert gw.api.get(f"/v1/sources/{source['id']}/secret").json() == {"secret": NEW_SECRET}
    with anonymous_client(gw) as client:
        wait_until(
            lambda: github_post(client, source, NEW_SECRET, {"n": 1}).status_code == 200,
            10,
            "the new secret to be taken",
        )

        disabled = ok(gw.run_cli("sources", "disable", source["id"]))
        assert "within" in disabled.stderr and source["id"] in disabled.stdout
        assert gw.api.get(f"/v1/sources/{source['id']}").json()["disabled"] is True
        wait_until(
            lambda: github_post(client, source, NEW_SECRET, {"n": 2}).status_code == 403,
            10,
            "the disabled source to refuse requests",
        )
        assert as_json(gw, "sources", "enable", source["id"])["disabled"] is False
        wait_until(
            lambda: github_post(client, source, NEW_SECRET, {"n": 3}).status_code == 200,
            10,
            "the enabled source to accept requests",
        )

        # No one to answer the question: nothing is deleted.
        refused(gw.run_cli("sources", "delete", source["id"]), 2, "--yes")
        refused(with_stdin(gw, "n\n", "sources", "delete", source["id"]), 1, "nothing")
        assert gw.api.get(f"/v1/sources/{source['id']}").status_code == 200
        deleted = with_stdin(gw, "y\n", "sources", "delete", source["id"], "--json")
        assert json.loads(ok(deleted).stdout)["id"] == source["id"]
        assert gw.api.get(f"/v1/sources/{source['id']}").status_code == 404
        wait_until(
            lambda: github_post(client, source, NEW_SECRET, {"n": 4}).status_code == 404,
            10,
            "the deleted source's URL to answer 404",
        )
    # The events it received stay (those sent while a change was on its way may be there too).
    kept = gw.api.get("/v1/events", params={"source_id": source["id"]}).json()["data"]
    assert {1, 3} <= {event["data"]["n"] for event in kept}

    other = create(gw, "other", "--provider", "stripe", "--secret", "whsec_other")
    ok(gw.run_cli("sources", "delete", other["id"], "--yes"))
    assert gw.api.get("/v1/sources").json()["data"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--provider", "nope", "--secret", "x"], ["--provider", "'github'"]),
        (["--provider", "hmac", "--secret", "x"], ["--options", "header"]),
        (["--provider", "hmac", "--secret", "x", "--options", "{nope"], ["--options", "JSON"]),
        (["--provider", "github", "--secret", "x", "--options", '{"a": 1}'], ["--options"]),
        (["--provider", "standard", "--secret", "not base64!"], ["--secret"]),
        (["--provider", "github"], ["--secret", "stdin"]),
        (["--provider", "github", "--secret", "x", "--tolerance-seconds", "0"], ["--tolerance"]),
        (["--provider", "github", "--secret", "x", "--rate-limit", "lots"], ["--rate-limit"]),
        (["--provider", "github", "--secret", "x", "--deduplicate-body", "y"], ["yes"]),
    ],
    ids=[
        "provider",
        "hmac-options",
        "options-json",
        "options-other",
        "standard-secret",
        "no-secret",
        "tolerance",
        "rate",
        "dedup",
    ],
)
def test_create_refuses_bad_input(gw: Gateway, args: list[str], words: list[str]) -> None:
    refused(gw.run_cli("sources", "create", "name", *args), 2, *words)
    assert gw.api.get("/v1/sources").json()["data"] == []


def test_unknown_sources_and_empty_updates(gw: Gateway) -> None:
    for command in (
        ["show"],
        ["disable"],
        ["enable"],
        ["delete", "--yes"],
        ["update", "--name", "x"],
    ):
        refused(gw.run_cli("sources", *command[:1], UNKNOWN, *command[1:]), 1, "not found", UNKNOWN)
    source = create(gw, "GitHub", "--provider", "github", "--secret", SECRET)
    refused(gw.run_cli("sources", "update", source["id"]), 2, "nothing to change")
    refused(gw.run_cli("sources", "update", source["id"], "--name", ""), 2, "--name")
    refused(
        gw.run_cli("sources", "update", source["id"], "--options", '{"header": "X"}'),
        2,
        "--options",
    )
    assert gw.api.get(f"/v1/sources/{source['id']}").json() == source


def test_help_names_every_provider() -> None:
    assert PROVIDERS.replace(" or ", ", ").split(", ") == list(get_args(Provider))
    result = CliRunner().invoke(app, ["sources", "create", "--help"])
    assert result.exit_code == 0 and "--secret" in result.output and "--json" in result.output
