"""Sending one email through the server of GATEWAY_SMTP_URL, with a deadline.

`smtp://user:password@host:port` speaks plain SMTP and upgrades with STARTTLS when the
server offers it; `smtps://` is TLS from the first byte. The password is only ever
handed to the SMTP client: errors and logs name the server by host and port alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

TIMEOUT = 30.0  # seconds for the whole exchange with the mail server


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:  # what logs show: never the credentials
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"


def parse_url(url: str) -> SmtpServer:
    parts = urlsplit(url)
    tls = parts.scheme == "smtps"
    return SmtpServer(
        host=parts.hostname or "localhost",
        port=parts.port or (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


class MailError(Exception):
    """The mail could not be handed to the server (its text holds no credentials)."""


async def send(
    server: SmtpServer, sender: str, to: str, subject: str, text: str, limit: float = TIMEOUT
) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    try:
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.tls,
            timeout=limit,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # The client's own message names the server and the reply, never the password.
        raise MailError(f"{server}: {type(exc).__name__}: {exc}"[:500]) from None
