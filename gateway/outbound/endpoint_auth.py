"""How a receiver authenticates the gateway: the endpoint's `auth`, checked, sealed and masked.

One of `basic`, `bearer`, `oauth2` (client credentials) or `mtls`. The whole object
is stored as JSON sealed by the SecretBox (`endpoint.auth`), shown masked, and
opened only to send (`credentials.py`) or by the explicit reveal route.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, TypeAdapter, field_validator, model_validator

from gateway.crypto import SecretBox
from gateway.validation import Input, Text

SEALED_AS = "endpoint.auth"  # what a sealed auth object is bound to
MASK = "********"
MAX_PEM = 65_536
# Header values go on the wire as they are (see schemas.py): visible ASCII and spaces.
_VISIBLE_RE = re.compile(r"^[\x20-\x7e]*$")


def _visible(value: str) -> str:
    if not _VISIBLE_RE.match(value):
        raise ValueError("must be printable ASCII characters")
    return value


VisibleText = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_visible)]


class BasicAuth(Input):
    type: Literal["basic"] = Field(description="`basic`: HTTP Basic authentication.")
    username: VisibleText = Field(description="Sent in `Authorization: Basic`; no `:`.")
    password: Annotated[str, Field(max_length=4096), AfterValidator(_visible)] = Field(
        description="Masked when shown."
    )

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("a basic auth username cannot contain ':'")
        return value


class BearerAuth(Input):
    type: Literal["bearer"] = Field(description="`bearer`: a fixed bearer token.")
    token: VisibleText = Field(description="Sent as `Authorization: Bearer <token>`; masked.")


class OAuth2Auth(Input):
    type: Literal["oauth2"] = Field(description="`oauth2`: an OAuth2 client-credentials token.")
    token_url: Text = Field(
        min_length=1,
        max_length=2048,
        description="The token endpoint (http or https), under the same address rules as "
        "the endpoint's url.",
    )
    client_id: VisibleText = Field(description="The client id, sent with HTTP Basic.")
    client_secret: VisibleText = Field(description="The client secret; masked when shown.")
    scope: VisibleText | None = Field(None, description="The `scope` asked for, if any.")
    audience: VisibleText | None = Field(None, description="The `audience` asked for, if any.")

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        from gateway.outbound.addresses import check_url_form

        check_url_form(value)
        return value


class MtlsAuth(Input):
    type: Literal["mtls"] = Field(description="`mtls`: a TLS client certificate.")
    certificate: Annotated[str, Field(min_length=1, max_length=MAX_PEM)] = Field(
        description="The client certificate (PEM; intermediates may follow it)."
    )
    private_key: Annotated[str, Field(min_length=1, max_length=MAX_PEM)] = Field(
        description="Its private key (PEM, unencrypted); masked when shown."
    )
    ca_bundle: Annotated[str, Field(min_length=1, max_length=MAX_PEM)] | None = Field(
        None,
        description="CA certificates (PEM) trusted for this endpoint's server certificate "
        "instead of the system's.",
    )

    @model_validator(mode="after")
    def _pems(self) -> MtlsAuth:
        check_pems(self.certificate, self.private_key, self.ca_bundle)
        return self


EndpointAuth = Annotated[
    BasicAuth | BearerAuth | OAuth2Auth | MtlsAuth, Field(discriminator="type")
]
AUTH_DOC = (
    "How the receiver authenticates the gateway: `basic` (`username`, `password`), "
    "`bearer` (`token`), `oauth2` client credentials (`token_url`, `client_id`, "
    "`client_secret`, optional `scope` and `audience`) or `mtls` (`certificate` and "
    "`private_key` in PEM, optional `ca_bundle`). Stored encrypted; shown with its secrets "
    "masked, in full only by `GET /v1/endpoints/{endpoint_id}/auth`. Null: none "
    "(see docs/endpoint-auth.md)."
)
_ADAPTER: TypeAdapter[BasicAuth | BearerAuth | OAuth2Auth | MtlsAuth] = TypeAdapter(EndpointAuth)
# What each type masks when shown.
_SECRET_FIELDS = {
    "basic": ("password",),
    "bearer": ("token",),
    "oauth2": ("client_secret",),
    "mtls": ("private_key",),
}


def check_pems(certificate: str, private_key: str, ca_bundle: str | None) -> None:
    """ValueError unless the PEMs parse and the key is the certificate's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(certificate.encode())
    except ValueError:
        raise ValueError("certificate is not a PEM X.509 certificate") from None
    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except TypeError:
        raise ValueError("private_key must not be encrypted") from None
    except Exception:  # malformed, or an algorithm `cryptography` does not support
        raise ValueError("private_key is not a PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != certs[0].public_key().public_bytes(
        encoding, public
    ):
        raise ValueError("private_key does not belong to the certificate")
    if ca_bundle is not None:
        try:
            x509.load_pem_x509_certificates(ca_bundle.encode())
        except ValueError:
            raise ValueError("ca_bundle is not PEM X.509 certificates") from None


def seal(auth: BasicAuth | BearerAuth | OAuth2Auth | MtlsAuth, box: SecretBox) -> str:
    return box.seal(json.dumps(auth.model_dump(exclude_none=True)), SEALED_AS)


def open_auth(sealed: str, box: SecretBox) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(box.open(sealed, SEALED_AS))
    return value


def masked(sealed: str | None, box: SecretBox) -> dict[str, Any] | None:
    """The auth object as shown: its secrets replaced by a mask."""
    if sealed is None:
        return None
    auth = open_auth(sealed, box)
    for name in _SECRET_FIELDS.get(auth.get("type", ""), ()):
        if name in auth:
            auth[name] = MASK
    return auth


def parse(value: dict[str, Any]) -> BasicAuth | BearerAuth | OAuth2Auth | MtlsAuth:
    return _ADAPTER.validate_python(value)
