"""Secrets at rest: endpoint and source secrets and custom header values, under AES-256-GCM.

A stored value reads `enc:v1:<key id>:<base64 nonce + ciphertext>`. The key id
names which key sealed it, so during a rotation values sealed under an old key
(`GATEWAY_OLD_SECRET_KEYS`) still open while `gateway secret-key rotate`
re-seals them under the new one. Each value is bound to what it is (for
example `endpoint.secret`), so a ciphertext copied into another column does
not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("gateway.crypto")

PREFIX = "enc:v1:"
KEY_FILE = "gateway.secret_key"


class SecretKeyError(ValueError):
    """A key is malformed or missing, or a stored value cannot be opened."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise SecretKeyError("a secret key must be 32 bytes in URL-safe base64") from None
    if len(key) != 32:
        raise SecretKeyError("a secret key must be 32 bytes in URL-safe base64")
    return key


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"gateway key id" + key).hexdigest()[:8]


class SecretBox:
    def __init__(self, key: bytes, old_keys: list[bytes] | None = None) -> None:
        self._current_id = _key_id(key)
        self._key = key
        self._ciphers = {_key_id(k): AESGCM(k) for k in [*(old_keys or []), key]}
        self._current = self._ciphers[self._current_id]

    def seal(self, plaintext: str, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"{PREFIX}{self._current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, purpose: str) -> str:
        """The plaintext; a value stored before encryption was turned on is returned as is."""
        if not stored.startswith(PREFIX):
            return stored
        key_id, _, payload = stored[len(PREFIX) :].partition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretKeyError(
                f"a stored secret is sealed under key {key_id}, which is not configured "
                "(set it in GATEWAY_OLD_SECRET_KEYS)"
            )
        raw = base64.b64decode(payload)
        try:
            return cipher.decrypt(raw[:12], raw[12:], purpose.encode()).decode()
        except InvalidTag:
            raise SecretKeyError(f"a stored {purpose} does not open under its key") from None

    def derive_key(self, label: str) -> bytes:
        """A key of its own for another use (signing portal links, say), from the current
        key by HKDF: the encryption key itself never signs anything, and rotating
        GATEWAY_SECRET_KEY voids whatever the derived key signed."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(hashes.SHA256(), 32, salt=None, info=label.encode()).derive(self._key)

    def is_current(self, stored: str) -> bool:
        return stored.startswith(f"{PREFIX}{self._current_id}:")

    def seal_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {name: self.seal(value, "endpoint.header") for name, value in headers.items()}

    def open_headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {
            name: self.open(value, "endpoint.header") for name, value in (headers or {}).items()
        }


class KeySettings(Protocol):
    """What `load_box` reads of the settings (which import this module, not the reverse)."""

    @property
    def secret_key(self) -> str | None: ...
    @property
    def old_secret_keys(self) -> Sequence[str]: ...
    @property
    def is_sqlite(self) -> bool: ...
    @property
    def data_dir(self) -> Path: ...


def load_box(settings: KeySettings) -> SecretBox:
    """The box for this configuration; in embedded mode a key is made and kept on first start."""
    old = [parse_key(k) for k in settings.old_secret_keys]
    if settings.secret_key:
        return SecretBox(parse_key(settings.secret_key), old)
    if not settings.is_sqlite:
        raise SecretKeyError(
            "GATEWAY_SECRET_KEY must be set when the database is shared: every process must "
            "use the same key (generate one with `gateway secret-key generate`)"
        )
    path = Path(settings.data_dir) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return SecretBox(parse_key(path.read_text()), old)
    key = generate_key()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "no GATEWAY_SECRET_KEY set: generated one to encrypt secrets at rest and kept "
        "it in %s; back it up with the database",
        path,
    )
    return SecretBox(parse_key(key), old)
