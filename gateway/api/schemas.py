"""The shapes every route shares: a page of results and an error."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class ErrorOut(BaseModel):
    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    meaning = {
        401: "Missing or invalid API key",
        403: "Not allowed for this key",
        404: "Not found (or another tenant's)",
        409: "Conflicts with the current state",
        413: "Body over the size limit",
        429: "Over the rate limit; see Retry-After",
        503: "Database unavailable; retry",
    }
    return {code: {"model": ErrorOut, "description": meaning[code]} for code in codes}


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None
