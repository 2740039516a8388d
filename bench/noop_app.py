"""Y2, the ingest yardstick: a no-op FastAPI POST route on the gateway's uvicorn settings.

It parses the JSON body into a pydantic-validated dict, as the publish route does
with its model, and answers 202 without storing anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/noop", status_code=202)
async def noop(body: dict[str, Any]) -> dict[str, str]:
    return {"status": "ok"}
