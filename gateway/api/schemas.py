"""The shapes every route shares: a page of results and an error."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ErrorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "endpoint 'ep_01KF3Y8Q2W6N4R9T7V5X1Z3B8D' not found"}]
        }
    )

    detail: str = Field(description="What went wrong, in a sentence meant for the developer.")


class ValidationProblem(BaseModel):
    type: str = Field(
        description="The kind of problem, for programs: `missing`, `string_too_long`, "
        "`json_invalid`, `value_error`, ..."
    )
    loc: list[str | int] = Field(
        description="Where the problem is: `body`, `query`, `path` or `header`, then the "
        "field's name and, inside lists, the item's index."
    )
    msg: str = Field(description="What is wrong there, for people.")


class ValidationErrorOut(BaseModel):
    """A request the gateway cannot accept as sent: each problem with where it is."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "type": "string_pattern_mismatch",
                            "loc": ["body", "type"],
                            "msg": "String should match pattern '^[A-Za-z0-9_.\\-]+$'",
                        }
                    ]
                }
            ]
        }
    )

    detail: list[ValidationProblem] = Field(description="Every problem found, at least one.")


# What each error status means, with an example of its answer.
_ERRORS: dict[int, tuple[str, str]] = {
    401: (
        "Missing or invalid API key",
        "missing API key: send 'Authorization: Bearer <key>'",
    ),
    403: (
        "Not allowed for this key: the route needs an unscoped (admin) key",
        "this API key is scoped to one tenant and cannot do this",
    ),
    404: (
        "Not found (or another tenant's)",
        "endpoint 'ep_01KF3Y8Q2W6N4R9T7V5X1Z3B8D' not found",
    ),
    409: (
        "Conflicts with the current state",
        "endpoint ep_01KF3Y8Q2W6N4R9T7V5X1Z3B8D is disabled",
    ),
    413: (
        "Body over the size limit (GATEWAY_MAX_BODY_BYTES)",
        "request body is larger than the limit of 1048576 bytes",
    ),
    415: (
        "The body is not labelled JSON",
        "the body must be JSON, sent with 'content-type: application/json' (not 'text/plain')",
    ),
    429: (
        "Over the rate limit, or too many failed credentials from this address; see Retry-After",
        "rate limit of 1000 requests per second exceeded",
    ),
    503: (
        "Database unavailable; retry after Retry-After seconds",
        "the database is unavailable; try again shortly",
    ),
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 422:
            responses[code] = {
                "model": ValidationErrorOut,
                "description": "The request is malformed or names something impossible",
            }
            continue
        meaning, example = _ERRORS[code]
        responses[code] = {
            "model": ErrorOut,
            "description": meaning,
            "content": {"application/json": {"example": {"detail": example}}},
        }
        if code in (429, 503):
            responses[code]["headers"] = _RETRY_AFTER
    return responses


def _page_examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """A page's example: one item, its own model's example, and the cursor after it."""
    args = cls.__pydantic_generic_metadata__["args"]
    extra = args[0].model_config.get("json_schema_extra") if args else None
    if isinstance(extra, dict) and extra.get("examples"):
        item = extra["examples"][0]
        # Lists page by id, or by name where names are the keys (event types).
        cursor = item["id"] if "id" in item else item["name"]
        schema["examples"] = [{"data": [item], "next_cursor": cursor}]


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(json_schema_extra=_page_examples)

    data: list[T] = Field(description="This page's items, newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


NOT_READY: dict[str, Any] = {
    "status": "not ready",
    "checks": {
        "database": "ok",
        "schema": "the database schema is at 0005, behind this version's 0006; run: "
        "gateway migrate",
        "queue": "unreachable",
    },
}


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ready", "checks": {"database": "ok", "schema": "ok", "queue": "ok"}}
            ]
        }
    )

    status: Literal["ready", "not ready"] = Field(
        description="`ready` when every check is `ok` (and the answer is 200), else "
        "`not ready` (503)."
    )
    checks: dict[str, str] = Field(
        description="Each dependency's state: `database` (answers `SELECT 1`), `schema` "
        "(migrated to this version's revision) and `queue` (Redis answers, or the "
        "in-process queue runs): `ok`, or what is wrong."
    )
