"""`gateway endpoints create` says where an endpoint's events may come from, as the API does."""

from __future__ import annotations

import json

from tests.support.gateway import Gateway


def test_published_only_and_named_sources(gw: Gateway) -> None:
    published = gw.run_cli(
        "endpoints", "create", "https://a.example/h", "--published-only", "--json"
    )
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["source_ids"] == []

    source = gw.api.post(
        "/v1/sources", json={"name": "gh", "provider": "github", "secret": "a long secret 123"}
    ).json()
    named = gw.run_cli(
        "endpoints", "create", "https://b.example/h", "--source", source["id"], "--json"
    )
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["source_ids"] == [source["id"]]

    unknown = gw.run_cli("endpoints", "create", "https://c.example/h", "--source", "src_nope")
    assert unknown.returncode == 2 and "--source" in unknown.stderr
    both = gw.run_cli(
        "endpoints", "create", "https://c.example/h", "--source", source["id"], "--published-only"
    )
    assert both.returncode == 2 and "contradict" in both.stderr
    assert len(gw.api.get("/v1/endpoints").json()["data"]) == 2
