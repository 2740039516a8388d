"""Request and response bodies of inbound sources and of `/in/{source}`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from gateway.inbound.verifiers import StandardVerifier
from gateway.transform import MAX_CODE_CHARS
from gateway.validation import HEADER_NAME_RE, Input, Text

Provider = Literal["stripe", "github", "gitlab", "shopify", "slack", "standard", "hmac"]
HeaderName = Annotated[str, Field(min_length=1, max_length=255, pattern=HEADER_NAME_RE.pattern)]


class HmacOptions(Input):
    """How a generic sender signs: which header, which hash, which encoding."""

    header: HeaderName = Field(description="The header that carries the signature.")
    algorithm: Literal["sha256", "sha1", "sha512"] = Field(
        "sha256", description="The HMAC's hash function."
    )
    encoding: Literal["hex", "base64"] = Field(
        "hex", description="How the signature is written in the header."
    )
    prefix: Annotated[Text, Field(max_length=64)] = Field(
        "", description="Text before the signature in the header, such as `sha256=`."
    )
    id_header: HeaderName | None = Field(
        None, description="A header with the sender's delivery id, to deduplicate on."
    )
    type_field: Annotated[Text, Field(min_length=1, max_length=255)] | None = Field(
        None, description="The top-level field of the JSON body that holds the event type."
    )


# The option, of every provider, naming the field whose value is the event's ordering key.
ORDERING_KEY_FIELD = "ordering_key_field"
# A dotted path of non-empty names, such as `data.object.customer`.
_FIELD_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


def check_source_options(provider: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options normalised for the provider; ValueError naming the problem."""
    options = dict(options or {})
    ordering_field = options.pop(ORDERING_KEY_FIELD, None)
    if ordering_field is not None and (
        not isinstance(ordering_field, str)
        or len(ordering_field) > 255
        or not _FIELD_PATH.match(ordering_field)
    ):
        raise ValueError(
            f"{ORDERING_KEY_FIELD} must be a dotted path into the received JSON, such as "
            "'data.object.customer' (at most 255 characters)"
        )
    checked: dict[str, Any] = {}
    if provider == "hmac":
        if not options:
            raise ValueError("options with at least 'header' are required for provider 'hmac'")
        try:
            checked = HmacOptions.model_validate(options).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"invalid hmac options ({problems})") from None
    elif options:
        raise ValueError(f"provider {provider!r} takes no options but {ORDERING_KEY_FIELD}")
    if ordering_field is not None:
        checked[ORDERING_KEY_FIELD] = ordering_field
    return checked


# Placeholders as documentation writes them (`whsec_...`, `<secret>`, `REPLACE-ME`): a
# source saved with one fails every request, with nothing to say why.
_PLACEHOLDER = re.compile(r"\.\.\.|\u2026|^<.*>$|replace[-_ ]?me|changeme", re.IGNORECASE)


def check_source_secret(provider: str, secret: str) -> str:
    if _PLACEHOLDER.search(secret):
        raise ValueError(
            "this looks like a placeholder from the documentation, not a secret: paste the "
            "signing secret the provider shows"
        )
    if provider == "standard":
        StandardVerifier.key(secret)
    return secret


SourceSecret = Annotated[Text, Field(min_length=1, max_length=1024)]
Tolerance = Annotated[int, Field(ge=1, le=7 * 24 * 3600)]


# Said once for the schemas that show the same field.
NAME_DOC = "A name for people (1 to 255 characters); not unique."
PROVIDER_DOC = (
    "Whose signature scheme requests are verified with: `stripe`, `github`, `gitlab`, "
    "`shopify`, `slack`, `standard` (Standard Webhooks) or `hmac` (any sender that signs "
    "the body with an HMAC in one header, described by `options`)."
)
SECRET_DOC = (
    "The signing secret the provider shows (for `gitlab`, the secret token); for "
    "`standard`, a `whsec_` secret. At most 1024 characters, stored encrypted."
)
OPTIONS_DOC = (
    "For `hmac` only, and required there: `header` (the signature's header), `algorithm` "
    "(`sha256`, `sha1` or `sha512`; default `sha256`), `encoding` (`hex` or `base64`; "
    "default `hex`), `prefix` (text before the signature, such as `sha256=`), "
    "`id_header` (a header with the sender's delivery id) and `type_field` (the body's "
    "field with the event type). Every provider takes `ordering_key_field`: a dotted path "
    "into the received JSON (after the source's transformation, if any), such as "
    "`data.object.customer`, whose value (a string or a number, up to 200 characters) "
    "becomes the event's `ordering_key` (see docs/ordering.md)."
)
TOLERANCE_DOC = (
    "How far, in seconds, a signed timestamp may be from the gateway's clock (1 to 604800; "
    "default 300); older requests are refused as replays. Used by `stripe`, `slack` and "
    "`standard`, whose signatures carry a timestamp."
)
RATE_LIMIT_DOC = (
    "Verified requests per second it accepts at most (1 to 1000000); null: "
    "GATEWAY_INBOUND_RATE_LIMIT. Over it, 429 with Retry-After."
)
VALIDATE_DOC = (
    "Check each received event's data against its type's schema in the event-type "
    "catalogue (`/v1/event-types`): data that fails it is refused with 400 before anything "
    "is stored, and shown among the source's refusals. With GATEWAY_EVENT_TYPES=strict, "
    "a type not in the catalogue is refused too."
)
DEDUPLICATE_DOC = (
    "Also treat a request whose body was already received as a duplicate, whatever its "
    "delivery id. Null or left out: the provider's default (on for `github` and "
    "`gitlab`, whose delivery ids are not signed)."
)

GITHUB_SECRET_EXAMPLE = "kR7n2Vq9TzW4xLp8Hs3Jd6Fm"
SOURCE_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "GitHub: acme/api",
    "provider": "github",
    "secret": GITHUB_SECRET_EXAMPLE,
}
SOURCE_CREATE_HMAC_EXAMPLE: dict[str, Any] = {
    "name": "Payments partner",
    "provider": "hmac",
    "secret": "partner-signing-key-7c1e9a",
    "options": {"header": "X-Signature", "prefix": "sha256=", "type_field": "event"},
}
SOURCE_EXAMPLE: dict[str, Any] = {
    "id": "src_01KF2T6H9K3M5P7R1T4W6Y8A2C",
    "name": "GitHub: acme/api",
    "provider": "github",
    "options": {},
    "tolerance_seconds": 300,
    "rate_limit": None,
    "deduplicate_body": True,
    "validate": False,
    "disabled": False,
    "ingest_path": "/in/src_01KF2T6H9K3M5P7R1T4W6Y8A2C",
    "created_at": "2026-01-14T16:02:51.734000Z",
    "updated_at": "2026-01-14T16:02:51.734000Z",
}


TRANSFORMATION_DOC = (
    "JavaScript defining `function handler(webhook)`, run on each verified request before "
    'it is stored: it gets `{"method", "url", "headers", "payload", "event_type"}` (the '
    "payload being the event's data) and returns it with `payload` and `event_type` "
    "changed, or with `cancel: true` to drop the request (answered 200, stored nothing; "
    "see docs/transformations.md). At most 65536 characters; it must compile and define "
    "`handler` (422 otherwise)."
)


class SourceCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [SOURCE_CREATE_EXAMPLE, SOURCE_CREATE_HMAC_EXAMPLE]}
    )
    example_summaries: ClassVar[tuple[str, ...]] = (
        "A GitHub repository",
        "Any sender that signs with an HMAC",
    )

    name: Annotated[Text, Field(min_length=1, max_length=255)] = Field(description=NAME_DOC)
    provider: Provider = Field(description=PROVIDER_DOC)
    secret: SourceSecret = Field(description=SECRET_DOC)
    # Validated when absent too: hmac cannot do without its options.
    options: dict[str, Any] | None = Field(None, validate_default=True, description=OPTIONS_DOC)
    tolerance_seconds: Tolerance = Field(300, description=TOLERANCE_DOC)
    rate_limit: int | None = Field(None, gt=0, le=1_000_000, description=RATE_LIMIT_DOC)
    deduplicate_body: bool | None = Field(None, description=DEDUPLICATE_DOC)
    # `validate` is a method of pydantic's models: the field takes another name.
    validate_data: bool = Field(False, alias="validate", description=VALIDATE_DOC)
    disabled: bool = Field(False, description="Create it disabled: its URL answers 403.")
    transformation: Text | None = Field(
        None, min_length=1, max_length=MAX_CODE_CHARS, description=TRANSFORMATION_DOC
    )

    # Checked against the provider, declared before them, so that errors name the field.
    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str, info: ValidationInfo) -> str:
        if "provider" in info.data:
            check_source_secret(info.data["provider"], value)
        return value

    @field_validator("options")
    @classmethod
    def _check_options(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if "provider" not in info.data:
            return value
        return check_source_options(info.data["provider"], value)


class SourceUpdate(Input):
    """Only the fields sent change; the provider cannot."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"secret": "whsec_rotated-by-stripe-4f7b2c9e"}]}
    )

    name: Annotated[Text, Field(min_length=1, max_length=255)] | None = Field(
        None, description=NAME_DOC + " Cannot be null."
    )
    secret: SourceSecret | None = Field(None, description=SECRET_DOC + " Cannot be null.")
    options: dict[str, Any] | None = Field(None, description=OPTIONS_DOC)
    tolerance_seconds: Tolerance | None = Field(
        None, description=TOLERANCE_DOC + " Cannot be null."
    )
    rate_limit: int | None = Field(None, gt=0, le=1_000_000, description=RATE_LIMIT_DOC)
    # null: back to the provider's default.
    deduplicate_body: bool | None = Field(
        None, description=DEDUPLICATE_DOC + " Null: back to the provider's default."
    )
    validate_data: bool | None = Field(
        None, alias="validate", description=VALIDATE_DOC + " Cannot be null."
    )
    disabled: bool | None = Field(
        None, description="`true`: its URL answers 403 and stores nothing. Cannot be null."
    )
    transformation: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_CODE_CHARS,
        description=TRANSFORMATION_DOC + " Null removes it.",
    )


class SourceOut(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True, json_schema_extra={"examples": [SOURCE_EXAMPLE]}
    )

    id: str = Field(description="The source's id: `src_` and a ULID.")
    name: str = Field(description=NAME_DOC)
    provider: str = Field(description=PROVIDER_DOC)
    options: dict[str, Any] = Field(
        description="The source's options (`hmac`'s with their defaults filled in, and "
        "`ordering_key_field`); `{}` for none."
    )
    tolerance_seconds: int = Field(description=TOLERANCE_DOC)
    rate_limit: int | None = Field(description=RATE_LIMIT_DOC)
    # In effect: the source's own choice, else its provider's default.
    deduplicate_body: bool = Field(
        description="Whether a request whose body was already received is a duplicate, in "
        "effect: the source's own choice, else its provider's default."
    )
    validate_data: bool = Field(False, alias="validate", description=VALIDATE_DOC)
    disabled: bool = Field(description="Whether its URL refuses requests (403).")
    transformation: str | None = Field(None, description=TRANSFORMATION_DOC)
    ingest_path: str = Field(
        description="The path to give the provider, after this gateway's public URL."
    )
    created_at: datetime = Field(description="When it was created (RFC 3339, UTC).")
    updated_at: datetime = Field(description="When it was last changed (RFC 3339, UTC).")


class SourceCreated(SourceOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**SOURCE_EXAMPLE, "secret": GITHUB_SECRET_EXAMPLE}]}
    )

    secret: str = Field(description="The secret it verifies with, as it was given.")


class SourceSecretOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"secret": GITHUB_SECRET_EXAMPLE}]})

    secret: str = Field(description="The secret the source verifies requests with.")


class InboundAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "accepted", "event_id": "evt_01KF41M2Q8T4W7Y1A3C6E9G2HJ"}]
        }
    )

    status: Literal["accepted", "duplicate", "cancelled"] = Field(
        description="`accepted`: stored and being fanned out. `duplicate`: the provider's "
        "delivery id (or, where the source deduplicates bodies, the body) was received "
        "before; nothing new is stored. `cancelled`: the source's transformation dropped "
        "it; nothing is stored (the source's refusals show it)."
    )
    event_id: str | None = Field(
        description="The event stored for it (`evt_...`); for a duplicate, the first one; "
        "null when cancelled."
    )


class InboundChallenge(BaseModel):
    """The answer to a Slack `url_verification` handshake."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}]
        }
    )

    challenge: str = Field(description="The `challenge` of Slack's request, sent back.")
