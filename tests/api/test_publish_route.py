"""`POST /v1/events` resolves its parameters by hand (`gateway/api/publish_route.py`):
it must answer every request exactly as FastAPI's own resolution of the same declaration
does. Both are run here, in-process on SQLite, on the same requests, good and bad."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from gateway.api.publish_route import PublishRoute
from gateway.crypto import generate_key
from gateway.main import create_app
from gateway.migrate import upgrade
from gateway.settings import Settings

KEY = "parity-" + "k" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
GOOD = b'{"type":"a.b","data":{}}'

REQUESTS: list[tuple[str, bytes, dict[str, str]]] = [
    ("truncated", b'{"type": "a.b", "data": {', {**AUTH, **JSON}),
    ("not-json", b"not json", {**AUTH, **JSON}),
    ("empty", b"", {**AUTH, **JSON}),
    ("array", b"[]", {**AUTH, **JSON}),
    ("null", b"null", {**AUTH, **JSON}),
    ("latin-1", '{"type":"a.b","data":{"x":"é"}}'.encode("latin-1"), {**AUTH, **JSON}),
    ("utf-16", '{"type":"a.b","data":{}}'.encode("utf-16"), {**AUTH, **JSON}),
    ("bad-type-and-data", b'{"type":"a b","data":[]}', {**AUTH, **JSON}),
    ("extra-field", b'{"type":"a.b","data":{},"x":1}', {**AUTH, **JSON}),
    ("empty-tenant", b'{"type":"a.b","data":{},"tenant_id":""}', {**AUTH, **JSON}),
    ("nan", b'{"type":"a.b","data":{"x":NaN}}', {**AUTH, **JSON}),
    ("key-too-long", GOOD, {**AUTH, **JSON, "Idempotency-Key": "x" * 201}),
    ("key-empty", GOOD, {**AUTH, **JSON, "Idempotency-Key": ""}),
    (
        "key-too-long-and-bad-body",
        b'{"type":"a.b"}',
        {**AUTH, **JSON, "Idempotency-Key": "x" * 201},
    ),
    ("text-plain", GOOD, {**AUTH, "Content-Type": "text/plain"}),
    ("no-content-type", GOOD, AUTH),
    ("no-content-type-no-body", b"", AUTH),
    ("json-suffix", GOOD, {**AUTH, "Content-Type": "application/vnd.x+json"}),
    ("charset", GOOD, {**AUTH, "Content-Type": "application/json; charset=utf-8"}),
    ("no-key", GOOD, JSON),
    ("basic-scheme", GOOD, {"Authorization": "Basic abc", **JSON}),
    ("wrong-key", GOOD, {"Authorization": "Bearer nope", **JSON}),
    (
        "unknown-endpoint",
        b'{"type":"a.b","data":{},"endpoint_ids":["ep_01ZZZZZZZZZZZZZZZZZZZZZZZZ"]}',
        {**AUTH, **JSON},
    ),
    ("good", '{"type":"a.b","data":{"é":1},"ordering_key":"k"}'.encode(), {**AUTH, **JSON}),
    ("keyed", GOOD, {**AUTH, **JSON, "Idempotency-Key": "abc"}),
    ("keyed-repeat", GOOD, {**AUTH, **JSON, "Idempotency-Key": "abc"}),
    (
        "keyed-other-body",
        b'{"type":"a.b","data":{"z":1}}',
        {**AUTH, **JSON, "Idempotency-Key": "abc"},
    ),
]
SHOWN_HEADERS = {"content-type", "www-authenticate", "retry-after"}


def _answers(directory: Path) -> dict[str, Any]:
    directory.mkdir()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{directory}/gateway.db",
        api_key=KEY,
        secret_key=generate_key(),
    )
    upgrade(settings)
    answers = {}
    with TestClient(create_app(settings)) as client:
        for name, body, headers in REQUESTS:
            response = client.post("/v1/events", content=body, headers=headers)
            content = response.json() if response.content else None
            if isinstance(content, dict) and "id" in content:  # new on each run
                content = {**content, "id": "...", "created_at": "..."}
            answers[name] = {
                "status": response.status_code,
                "body": content,
                "headers": {k: v for k, v in response.headers.items() if k in SHOWN_HEADERS},
            }
    return answers


def test_publish_answers_as_fastapi_resolving_the_same_declaration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_hand = _answers(tmp_path / "by-hand")
    monkeypatch.setattr(PublishRoute, "get_route_handler", APIRoute.get_route_handler)
    by_fastapi = _answers(tmp_path / "by-fastapi")
    for name, _, _ in REQUESTS:
        assert by_hand[name] == by_fastapi[name], (
            f"{name}: by hand {json.dumps(by_hand[name])}, "
            f"by FastAPI {json.dumps(by_fastapi[name])}"
        )
    # The cases are what they say: each kind of answer is among them.
    statuses = {answer["status"] for answer in by_hand.values()}
    assert statuses == {200, 202, 401, 409, 415, 422}, statuses
