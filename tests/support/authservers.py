"""Servers that authenticated endpoints need, all on loopback: an OAuth2 token server,
an HTTPS receiver demanding a client certificate (with certificates made here), and an
HTTP CONNECT proxy. Each runs its own event loop in a thread, like `receiver.py`."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class _Threaded:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> None:
        self._thread.start()
        self._run(self._serve())

    async def _serve(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)


class _App(_Threaded):
    ssl_context: ssl.SSLContext | None = None

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        app = web.Application()
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _close(self) -> None:
        await self._runner.cleanup()


class TokenServer(_App):
    """Client credentials grants: counts them, hands out `tok-1`, `tok-2`, ... per client."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, str]] = []  # the forms, with the client id
        self.clients: dict[str, str] = {}  # client id -> secret
        self.expires_in = 3600
        self.delay = 0.0

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def count(self, client_id: str) -> int:
        return sum(1 for r in self.requests if r["client_id"] == client_id)

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        self.requests.append({**{k: str(v) for k, v in form.items()}, "client_id": client_id})
        if self.delay:
            await asyncio.sleep(self.delay)
        if scheme != "Basic" or self.clients.get(client_id) != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"tok-{client_id}-{self.count(client_id)}"
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1, and client certificates, as PEM."""

    ca_cert: str
    ca_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def make(cls, name: str = "Test CA") -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(_pem(cert), key)

    def issue(self, common_name: str, server: bool = False) -> tuple[str, str]:
        """A certificate and its key (PEM) signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca = x509.load_pem_x509_certificate(self.ca_cert.encode())
        builder = _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            ca.subject,
            key.public_key(),
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return _pem(cert), key_pem


def _builder(subject: x509.Name, issuer: x509.Name, public: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class MtlsReceiver(_App):
    """An HTTPS receiver that completes no handshake without a client certificate its CA
    signed; records the common name of each client it answered."""

    def __init__(self, pki: Pki) -> None:
        super().__init__()
        self.clients: list[str] = []
        cert, key = pki.issue("127.0.0.1", server=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=pki.ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
            handle.write(cert + key)
            handle.flush()
            context.load_cert_chain(handle.name)
        self.ssl_context = context

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._handle)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in (peer or {}).get("subject", ()))
        self.clients.append(str(subject.get("commonName")))
        return web.json_response({"ok": True})


class ConnectProxy(_Threaded):
    """An HTTP CONNECT proxy: records each target asked for and tunnels to it."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        self._server.close()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.targets.append(target)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                writer.close()
                return
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except (OSError, ValueError, asyncio.IncompleteReadError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
