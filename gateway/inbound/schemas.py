"""Request and response bodies of inbound sources and of `/in/{source}`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from gateway.inbound.verifiers import StandardVerifier
from gateway.validation import HEADER_NAME_RE, Input, Text

Provider = Literal["stripe", "github", "gitlab", "shopify", "slack", "standard", "hmac"]
HeaderName = Annotated[str, Field(min_length=1, max_length=255, pattern=HEADER_NAME_RE.pattern)]


class HmacOptions(Input):
    """How a generic sender signs: which header, which hash, which encoding."""

    header: HeaderName
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: Annotated[Text, Field(max_length=64)] = ""
    id_header: HeaderName | None = None
    type_field: Annotated[Text, Field(min_length=1, max_length=255)] | None = None


def check_source_options(provider: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options normalised for the provider; ValueError naming the problem."""
    if provider == "hmac":
        if not options:
            raise ValueError("options with at least 'header' are required for provider 'hmac'")
        try:
            return HmacOptions.model_validate(options).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"invalid hmac options ({problems})") from None
    if options:
        raise ValueError(f"provider {provider!r} takes no options")
    return {}


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


class SourceCreate(Input):
    name: Annotated[Text, Field(min_length=1, max_length=255)]
    provider: Provider
    secret: SourceSecret
    # Validated when absent too: hmac cannot do without its options.
    options: dict[str, Any] | None = Field(None, validate_default=True)
    tolerance_seconds: Tolerance = 300
    rate_limit: int | None = Field(None, gt=0, le=1_000_000)
    deduplicate_body: bool | None = None
    disabled: bool = False

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
    name: Annotated[Text, Field(min_length=1, max_length=255)] | None = None
    secret: SourceSecret | None = None
    options: dict[str, Any] | None = None
    tolerance_seconds: Tolerance | None = None
    rate_limit: int | None = Field(None, gt=0, le=1_000_000)
    # null: back to the provider's default.
    deduplicate_body: bool | None = None
    disabled: bool | None = None


class SourceOut(BaseModel):
    id: str
    name: str
    provider: str
    options: dict[str, Any]
    tolerance_seconds: int
    rate_limit: int | None
    # In effect: the source's own choice, else its provider's default.
    deduplicate_body: bool
    disabled: bool
    ingest_path: str
    created_at: datetime
    updated_at: datetime


class SourceCreated(SourceOut):
    secret: str


class SourceSecretOut(BaseModel):
    secret: str


class InboundAccepted(BaseModel):
    status: Literal["accepted", "duplicate"]
    event_id: str


class InboundChallenge(BaseModel):
    """The answer to a Slack `url_verification` handshake."""

    challenge: str
