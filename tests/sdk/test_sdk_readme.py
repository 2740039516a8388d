"""The SDK README's receivers, run as written: FastAPI's and Flask's, each given a delivery
signed by the `standardwebhooks` library, then the same with its body changed."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from gateway.outbound.signer import generate_secret

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"


def _example(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [block] = [b for b in blocks if marker in b and "@app.post" in b]
    return block


def _signed(secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"n": 1}}).encode()
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("evt_1", now, body.decode()),
        "content-type": "application/json",
    }
    return body, headers


def _app(marker: str, secret: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    exec(compile(_example(marker), f"README {marker} receiver", "exec"), namespace)
    return namespace["app"]


def test_the_fastapi_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    body, headers = _signed(secret)
    app = _app("from fastapi import", secret, monkeypatch)

    async def post(content: bytes) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.post("/webhooks", content=content, headers=headers)

    assert asyncio.run(post(body)).json() == {"ok": True}
    assert asyncio.run(post(body.replace(b"1", b"2"))).status_code == 401


def test_the_flask_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    body, headers = _signed(secret)
    client = _app("from flask import", secret, monkeypatch).test_client()
    assert client.post("/webhooks", data=body, headers=headers).get_json() == {"ok": True}
    changed = client.post("/webhooks", data=body.replace(b"1", b"2"), headers=headers)
    assert changed.status_code == 401
