"""Request and response bodies of the event-type catalogue (`/v1/event-types`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.validation import EventType, Input, Text, check_json_value

MAX_EXAMPLES = 20

NAME_DOC = (
    "The event type, as events carry it in `type`: letters, digits, `_`, `.` and `-`, "
    "dots separating its parts (`invoice.paid`). Its `group` is the part before the "
    "first dot."
)
DESCRIPTION_DOC = "What an event of this type means, for the people who subscribe to it."
SCHEMA_DOC = (
    "A JSON Schema (draft 2020-12, unless its `$schema` names another draft) that the "
    "`data` of every event of this type must meet; `format` is checked. Publishing data "
    "that fails it is a 422 naming the path and the rule, and nothing is stored. Null: "
    "any data. A `$ref` outside the schema is refused: schemas never fetch anything."
)
EXAMPLES_DOC = (
    f"Example `data` of this type, each valid against `schema` (at most {MAX_EXAMPLES}). "
    "The first is what a test send (`POST /v1/endpoints/{endpoint_id}/test`) sends "
    "when it is given the type but no data."
)
DEPRECATED_DOC = "Marked as on its way out: still published and delivered, shown as deprecated."

INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice": {"type": "string"},
        "amount": {"type": "integer", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
    },
    "required": ["invoice", "amount", "currency"],
}
EVENT_TYPE_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "invoice.paid",
    "description": "An invoice was paid in full.",
    "schema": INVOICE_SCHEMA,
    "examples": [{"invoice": "in_42", "amount": 1200, "currency": "EUR"}],
}
EVENT_TYPE_EXAMPLE: dict[str, Any] = {
    **EVENT_TYPE_CREATE_EXAMPLE,
    "group": "invoice",
    "deprecated": False,
    "archived": False,
    "archived_at": None,
    "created_at": "2026-01-14T16:02:51.734000Z",
    "updated_at": "2026-01-14T16:02:51.734000Z",
}


def _json_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        check_json_value(value)
    return value


def _json_examples(value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if value is not None:
        check_json_value(value)
    return value


class EventTypeCreate(Input):
    model_config = ConfigDict(
        populate_by_name=True, json_schema_extra={"examples": [EVENT_TYPE_CREATE_EXAMPLE]}
    )

    name: EventType = Field(description=NAME_DOC)
    description: Annotated[Text, Field(max_length=4000)] | None = Field(
        None, description=DESCRIPTION_DOC
    )
    data_schema: dict[str, Any] | None = Field(None, alias="schema", description=SCHEMA_DOC)
    examples: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_EXAMPLES, description=EXAMPLES_DOC
    )
    deprecated: bool = Field(False, description=DEPRECATED_DOC)

    _schema = field_validator("data_schema")(_json_schema)
    _examples = field_validator("examples")(_json_examples)


class EventTypeUpdate(Input):
    """Only the fields sent change."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={"examples": [{"deprecated": True}, {"archived": False}]},
    )
    example_summaries: ClassVar[tuple[str, ...]] = ("Deprecate it", "Bring an archived type back")

    description: Annotated[Text, Field(max_length=4000)] | None = Field(
        None, description=DESCRIPTION_DOC
    )
    data_schema: dict[str, Any] | None = Field(
        None, alias="schema", description=SCHEMA_DOC + " The examples must meet the new schema."
    )
    examples: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_EXAMPLES, description=EXAMPLES_DOC + " Null clears them."
    )
    deprecated: bool | None = Field(None, description=DEPRECATED_DOC + " Cannot be null.")
    archived: bool | None = Field(
        None,
        description="`true` archives it (as DELETE does); `false` brings it back. Cannot be null.",
    )

    _schema = field_validator("data_schema")(_json_schema)
    _examples = field_validator("examples")(_json_examples)


class EventTypeOut(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True, json_schema_extra={"examples": [EVENT_TYPE_EXAMPLE]}
    )

    name: str = Field(description=NAME_DOC)
    group: str | None = Field(
        description="The part of the name before its first dot (`invoice` for "
        "`invoice.paid`); null for a name without a dot."
    )
    description: str | None = Field(description=DESCRIPTION_DOC)
    data_schema: dict[str, Any] | None = Field(alias="schema", description=SCHEMA_DOC)
    examples: list[dict[str, Any]] = Field(description=EXAMPLES_DOC)
    deprecated: bool = Field(description=DEPRECATED_DOC)
    archived: bool = Field(
        description="Archived (by DELETE): kept for the events already sent, refused in new "
        "endpoints' `event_types`, no longer checked on publish (refused in strict mode)."
    )
    archived_at: datetime | None = Field(description="When it was archived (RFC 3339, UTC).")
    created_at: datetime = Field(description="When it was created (RFC 3339, UTC).")
    updated_at: datetime = Field(description="When it was last changed (RFC 3339, UTC).")


class EventTypesImported(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"created": ["invoice.paid"], "updated": []}]}
    )

    created: list[str] = Field(description="The types added, by name.")
    updated: list[str] = Field(
        description="The types that were in the catalogue already, now as the document says "
        "(an archived one is brought back)."
    )


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document: each entry of its `webhooks` becomes an event type."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "openapi": "3.1.0",
                    "info": {"title": "Billing webhooks", "version": "1"},
                    "webhooks": {
                        "invoice.paid": {
                            "post": {
                                "summary": "An invoice was paid in full.",
                                "requestBody": {
                                    "content": {
                                        "application/json": {
                                            "schema": {"$ref": "#/components/schemas/InvoicePaid"},
                                            "example": EVENT_TYPE_CREATE_EXAMPLE["examples"][0],
                                        }
                                    }
                                },
                            }
                        }
                    },
                    "components": {"schemas": {"InvoicePaid": INVOICE_SCHEMA}},
                }
            ]
        },
    )

    openapi: Annotated[str, Field(pattern=r"^3\.1\.\d+")] = Field(
        description="The OpenAPI version: 3.1.x, the first with `webhooks`."
    )
    webhooks: dict[str, dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        description="Its webhooks: each entry's name is the event type, and the JSON "
        "schema and examples of its `post` request body become the type's (when the body "
        "is a whole payload with `type` and `data`, those of `data`). `$ref`s to "
        "`#/components/schemas` are resolved.",
    )
    components: dict[str, Any] | None = Field(
        None, description="Where the webhooks' `$ref`s point."
    )

    @model_validator(mode="after")
    def _storable(self) -> OpenAPIDocument:
        check_json_value(self.webhooks)
        check_json_value(self.components)
        return self
