"""Checks shared by every request body: what a column can store, what JSON a receiver can
parse, and the shapes of ids, tenants and event types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.\-]+$"
# An HTTP header name (RFC 9110 token).
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_DATA_DEPTH = 64


def storable(value: str) -> str:
    """Refuse what no database column can hold: NUL, and lone UTF-16 surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(storable)]
EventType = Annotated[str, Field(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN)]
TenantId = Annotated[Text, Field(min_length=1, max_length=255)]
ObjectId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]


class Input(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


def check_json_value(value: Any, depth: int = 1) -> None:
    """What receivers can parse: no NaN or infinities, sane nesting, valid Unicode."""
    if depth > MAX_DATA_DEPTH:
        raise ValueError(f"data is nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("data must not contain NaN or Infinity (they are not JSON)")
    if isinstance(value, str):
        storable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)
