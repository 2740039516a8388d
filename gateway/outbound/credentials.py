"""Authenticating deliveries: the Authorization header, OAuth2 tokens and mTLS contexts.

Everything here is made once per process and kept by what it was made from: the
opened auth by its sealed text, a token by endpoint and credentials hash (until
shortly before it expires), an SSL context by credentials hash. No message made
here carries a credential: they end up in attempt logs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from gateway.crypto import SecretBox
from gateway.outbound.addresses import RefusedAddress, check_ip, parse_ip
from gateway.outbound.endpoint_auth import open_auth
from gateway.settings import Settings

# A token is fetched again this long before it expires (or a tenth of its life, if less).
EXPIRY_MARGIN = 30.0
# A token answer without `expires_in` is kept this long (or until a 401).
DEFAULT_LIFETIME = 300.0
TOKEN_BODY_LIMIT = 65_536
_CACHE_LIMIT = 10_000


class AuthFailed(Exception):
    """The credentials could not be made ready (a token server's failure): the attempt fails."""


@dataclass(frozen=True)
class Ready:
    """What one attempt sends with: an Authorization header and/or an SSL context."""

    authorization: str | None = None
    ssl_context: ssl.SSLContext | None = None
    token_key: tuple[str, str] | None = None  # set for oauth2: a 401 refetches


@dataclass
class _Token:
    value: str
    refresh_at: float  # time.monotonic()


@dataclass
class Credentials:
    """The process's opened credentials, tokens and SSL contexts."""

    opened: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    tokens: dict[tuple[str, str], _Token] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)
    # What each sealed auth last made ready, and until when (time.monotonic()) it holds:
    # the one look-up an attempt to an endpoint with auth costs once things are cached.
    made: dict[str, tuple[Ready, float]] = field(default_factory=dict)

    def cached(self, sealed: str) -> Ready | None:
        found = self.made.get(sealed)
        if found is not None and time.monotonic() < found[1]:
            return found[0]
        return None

    def open(self, sealed: str, box: SecretBox) -> tuple[dict[str, Any], str]:
        """The auth object and a hash of it; decrypted once per process."""
        found = self.opened.get(sealed)
        if found is None:
            if len(self.opened) >= _CACHE_LIMIT:
                self.opened.clear()
            auth = open_auth(sealed, box)
            digest = hashlib.sha256(json.dumps(auth, sort_keys=True).encode()).hexdigest()
            found = self.opened[sealed] = (auth, digest)
        return found

    async def ready(
        self,
        endpoint_id: str,
        sealed: str,
        box: SecretBox,
        client: aiohttp.ClientSession,
        settings: Settings,
    ) -> Ready:
        ready = await self._ready(endpoint_id, sealed, box, client, settings)
        if len(self.made) >= _CACHE_LIMIT:
            self.made.clear()
        holds = self.tokens[ready.token_key].refresh_at if ready.token_key else float("inf")
        self.made[sealed] = (ready, holds)
        return ready

    async def _ready(
        self,
        endpoint_id: str,
        sealed: str,
        box: SecretBox,
        client: aiohttp.ClientSession,
        settings: Settings,
    ) -> Ready:
        auth, digest = self.open(sealed, box)
        kind = auth["type"]
        if kind == "basic":
            pair = f"{auth['username']}:{auth['password']}".encode()
            return Ready(authorization="Basic " + base64.b64encode(pair).decode())
        if kind == "bearer":
            return Ready(authorization=f"Bearer {auth['token']}")
        if kind == "oauth2":
            key = (endpoint_id, digest)
            token = await self.token(key, auth, client, settings)
            return Ready(authorization=f"Bearer {token}", token_key=key)
        if kind == "mtls":
            return Ready(ssl_context=self.ssl_context(auth, digest))
        raise AuthFailed(f"unknown auth type {kind!r}")

    async def refreshed(
        self,
        ready: Ready,
        sealed: str,
        box: SecretBox,
        client: aiohttp.ClientSession,
        settings: Settings,
    ) -> str:
        """The Authorization header with a new token, after a receiver refused `ready`'s."""
        assert ready.token_key is not None and ready.authorization is not None
        auth, _ = self.open(sealed, box)
        stale = ready.authorization.removeprefix("Bearer ")
        self.made.pop(sealed, None)
        return f"Bearer {await self.token(ready.token_key, auth, client, settings, stale)}"

    async def token(
        self,
        key: tuple[str, str],
        auth: dict[str, Any],
        client: aiohttp.ClientSession,
        settings: Settings,
        stale: str | None = None,
    ) -> str:
        """The cached token, else one fetched (once, however many attempts ask at once).

        With `stale` (a token a receiver refused), a fresh one unless another attempt
        already replaced it.
        """
        cached = self.tokens.get(key)
        if cached is not None and cached.value != stale and time.monotonic() < cached.refresh_at:
            return cached.value
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = asyncio.Lock()
        async with lock:
            cached = self.tokens.get(key)
            if (
                cached is not None
                and cached.value != stale
                and time.monotonic() < cached.refresh_at
            ):
                return cached.value
            value, lifetime = await self._fetch(auth, client, settings)
            if len(self.tokens) >= _CACHE_LIMIT:
                self.tokens.clear()
            margin = min(EXPIRY_MARGIN, lifetime / 10)
            self.tokens[key] = _Token(value, time.monotonic() + lifetime - margin)
            return value

    async def _fetch(
        self, auth: dict[str, Any], client: aiohttp.ClientSession, settings: Settings
    ) -> tuple[str, float]:
        """A client-credentials grant (RFC 6749 4.4), the client authenticated with Basic."""
        url = auth["token_url"]
        host = urlsplit(url).hostname or ""
        form = {"grant_type": "client_credentials"}
        for name in ("scope", "audience"):
            if auth.get(name):
                form[name] = auth[name]
        pair = f"{quote(auth['client_id'], safe='')}:{quote(auth['client_secret'], safe='')}"
        headers = {
            "authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "accept": "application/json",
        }
        where = f"oauth2 token request to {host}"
        try:
            literal = parse_ip(host)
            if literal is not None:  # names are checked by the client's resolver
                check_ip(literal, settings.allowed_networks)
            async with client.post(
                url, data=form, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(TOKEN_BODY_LIMIT)
                status = response.status
        except TimeoutError:
            raise AuthFailed(f"{where} timed out") from None
        except RefusedAddress as exc:
            raise AuthFailed(f"{where} refused: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                raise AuthFailed(f"{where} refused: {exc.os_error}") from None
            raise AuthFailed(f"{where} failed: cannot connect") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AuthFailed(f"{where} failed: {type(exc).__name__}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if status != 200:
            # The standard error code (`invalid_client`) says what is wrong and is no secret.
            code = answer.get("error") if isinstance(answer, dict) else None
            said = f" ({code})" if isinstance(code, str) and code.isascii() else ""
            raise AuthFailed(f"{where} answered {status}{said[:80]}")
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthFailed(f"{where}: the answer has no access_token")
        lifetime = answer.get("expires_in", DEFAULT_LIFETIME)
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_LIFETIME
        return token, float(lifetime)

    def ssl_context(self, auth: dict[str, Any], digest: str) -> ssl.SSLContext:
        context = self.contexts.get(digest)
        if context is None:
            if len(self.contexts) >= _CACHE_LIMIT:
                self.contexts.clear()
            context = self.contexts[digest] = _client_context(auth)
        return context


def _client_context(auth: dict[str, Any]) -> ssl.SSLContext:
    """An SSL context presenting the client certificate, trusting `ca_bundle` if given."""
    ca_bundle = auth.get("ca_bundle")
    context = (
        ssl.create_default_context(cadata=ca_bundle) if ca_bundle else ssl.create_default_context()
    )
    # load_cert_chain reads only files: the key is written to one only the gateway can
    # read (mkstemp makes it 0600) and removed as soon as it is loaded.
    fd, path = tempfile.mkstemp(prefix="gateway-mtls-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(auth["certificate"].rstrip("\n") + "\n" + auth["private_key"])
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context
