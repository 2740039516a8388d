"""`gateway listen`: receive a gateway's deliveries on this machine, wherever the gateway runs.

A client of the HTTP API only (any gateway, local or remote, with an API key). It
creates, or finds again, a stream endpoint of its own, named `gateway listen
<hostname>` (`--name`), reads its deliveries from `GET /v1/endpoints/{id}/stream`,
forwards each to the local URL with its signed headers and body as they are, and
acknowledges it with what the local receiver answered: a 2xx is delivered; anything
else, or no acknowledgement at all, is retried by the gateway on its schedule.
Stopping it at any moment loses nothing: the endpoint stays, and whatever was not
acknowledged is sent again, once a listener is back.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from gateway.commands.common import EXIT_USAGE, JsonFlag, fail, note, out, stop_on_signals

if TYPE_CHECKING:
    import aiohttp
    from rich.table import Table

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
# The gateway sends a comment every 10 s: three missed means the connection is gone.
READ_TIMEOUT = 30.0
# Seconds between reconnections, doubling from the first to the last.
BACKOFF = (1.0, 30.0)
# What the gateway keeps of a local answer's body (the attempt log's limit).
BODY_LIMIT = 4096
# Rows the live table keeps on screen.
ROWS = 20
# Not forwarded: they describe the gateway's connection, not the delivery.
_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding"}


@dataclass
class Forwarded:
    """One offer as forwarded and acknowledged; `--json` prints these fields."""

    at: str
    event_type: str
    event_id: str
    delivery_id: str
    attempt: int
    status: int | None  # what the local receiver answered; None: no answer
    error: str | None
    duration_ms: int
    acknowledged: bool  # False: the gateway's attempt had timed out already


def listen(
    forward_to: Annotated[
        str,
        typer.Option(
            "--forward-to",
            help="The local URL to forward each delivery to, such as "
            "http://localhost:3000/webhooks.",
        ),
    ],
    event_types: Annotated[
        list[str] | None,
        typer.Option(
            "--event-type",
            help="Only events of this type; `invoice.*` for a prefix (repeat for more). "
            "Left out: every event.",
        ),
    ] = None,
    url: Annotated[
        str,
        typer.Option(
            "--url", envvar="GATEWAY_URL", help="The gateway's base URL (its API, /v1/...)."
        ),
    ] = DEFAULT_GATEWAY,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="GATEWAY_API_KEY",
            help="An API key of that gateway (default: GATEWAY_API_KEY, else the file "
            "gateway.api_key of a local gateway in this directory).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="The endpoint's description, by which it is found again "
            "(default: 'gateway listen <this host's name>')."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds the local receiver may take to answer.")
    ] = 10.0,
    as_json: JsonFlag = False,
) -> None:
    """Forward a gateway's deliveries to a URL on this machine, as they come.

    Creates (or reuses) a stream endpoint of the gateway, prints its signing secret
    for your receiver to verify with, and shows each delivery with what your receiver
    answered (--json: one JSON object per line). A 2xx is acknowledged as delivered;
    anything else is retried by the gateway on its schedule. Ctrl-C stops; the
    endpoint stays, and its deliveries wait for the next `gateway listen`.
    """
    if not forward_to.startswith(("http://", "https://")):
        fail(f"--forward-to must be an http or https URL, not {forward_to!r}", EXIT_USAGE)
    key = api_key or _local_key()
    if not key:
        fail(
            f"no API key: set GATEWAY_API_KEY or pass --api-key (a key of the gateway at {url})",
            EXIT_USAGE,
        )
    listener = _Listener(
        url.rstrip("/"),
        key,
        forward_to,
        event_types or None,
        name or f"gateway listen {socket.gethostname()}",
        timeout,
        as_json,
    )
    try:
        asyncio.run(listener.run())
    except KeyboardInterrupt:  # where the loop could not take SIGINT over
        pass
    if listener.endpoint_id:
        note(
            f"stopped after {listener.count} deliveries; endpoint {listener.endpoint_id} "
            "stays, and what was not acknowledged waits for the next `gateway listen`."
        )


def _local_key() -> str | None:
    """A local gateway's generated key (embedded mode writes it beside its database)."""
    path = Path("gateway.api_key")
    return path.read_text().strip() or None if path.is_file() else None


class _Listener:
    def __init__(
        self,
        base: str,
        key: str,
        forward_to: str,
        event_types: list[str] | None,
        name: str,
        timeout: float,
        as_json: bool,
    ) -> None:
        self.base = base
        self.key = key
        self.forward_to = forward_to
        self.event_types = event_types
        self.name = name
        self.timeout = timeout
        self.as_json = as_json
        self.endpoint_id: str | None = None
        self.count = 0
        self.rows: deque[Forwarded] = deque(maxlen=ROWS)
        self.state = "connecting"
        self._forwards: set[asyncio.Task[None]] = set()
        self._live: Any = None  # the live table, on a terminal

    async def run(self) -> None:
        import aiohttp

        stop = stop_on_signals()
        headers = {"Authorization": f"Bearer {self.key}", "User-Agent": "gateway-listen"}
        async with (
            aiohttp.ClientSession(headers=headers) as api,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as local,
        ):
            await self._ensure_endpoint(api)
            reading = asyncio.create_task(self._read_forever(api, local))
            stopping = asyncio.create_task(stop.wait())
            with self._display():
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reading, stopping, *self._forwards):
                task.cancel()
            # An offer cut off here was not acknowledged: the gateway sends it again.
            await asyncio.gather(reading, stopping, *self._forwards, return_exceptions=True)
            if reading.done() and not reading.cancelled() and reading.exception():
                raise reading.exception()  # type: ignore[misc]

    # the endpoint

    async def _ensure_endpoint(self, api: aiohttp.ClientSession) -> None:
        """Find this listener's endpoint by its description, or create it; print its secret."""
        found = await self._find(api)
        if found is None:
            body: dict[str, Any] = {"kind": "stream", "description": self.name}
            if self.event_types:
                body["event_types"] = self.event_types
            created = await self._call(api, "POST", "/v1/endpoints", body, expect=201)
            self.endpoint_id = created["id"]
            note(f"created stream endpoint [bold]{created['id']}[/bold] ({escape(self.name)})")
        else:
            self.endpoint_id = found["id"]
            changes: dict[str, Any] = {}
            if self.event_types and found["event_types"] != self.event_types:
                changes["event_types"] = self.event_types
            if found["disabled"]:
                changes["disabled"] = False
            if changes:
                await self._call(api, "PATCH", f"/v1/endpoints/{found['id']}", changes)
            note(f"using stream endpoint [bold]{found['id']}[/bold] ({escape(self.name)})")
        secret = await self._call(api, "GET", f"/v1/endpoints/{self.endpoint_id}/secret")
        note(f"signing secret (verify with it): {secret['secret']}")
        types = ", ".join(self.event_types) if self.event_types else "every event"
        note(
            f"forwarding {escape(types)} to [bold]{escape(self.forward_to)}[/bold]; Ctrl-C to stop"
        )

    async def _find(self, api: aiohttp.ClientSession) -> dict[str, Any] | None:
        cursor = None
        while True:
            query = "?limit=250" + (f"&cursor={cursor}" if cursor else "")
            page = await self._call(api, "GET", "/v1/endpoints" + query)
            for endpoint in page["data"]:
                if endpoint.get("kind") == "stream" and endpoint["description"] == self.name:
                    return endpoint  # type: ignore[no-any-return]
            cursor = page.get("next_cursor")
            if not cursor:
                return None

    async def _call(
        self,
        api: aiohttp.ClientSession,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> Any:
        import aiohttp

        try:
            async with api.request(method, self.base + path, json=body) as response:
                text = await response.text()
                if response.status != expect:
                    fail(f"{method} {path}: {response.status} {_detail(text)}")
                return json.loads(text)
        except aiohttp.ClientError as exc:
            fail(f"cannot reach the gateway at {self.base}: {exc or type(exc).__name__}")

    # the stream

    async def _read_forever(self, api: aiohttp.ClientSession, local: aiohttp.ClientSession) -> None:
        import aiohttp

        wait = BACKOFF[0]
        while True:
            try:
                await self._read(api, local)
                reason = "the gateway closed the stream"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            except _Gone:
                await self._ensure_endpoint(api)
                continue
            if self.state == "connected":
                wait = BACKOFF[0]
            self.state = f"reconnecting in {wait:g} s ({reason})"
            self._status()
            await asyncio.sleep(wait)
            wait = min(wait * 2, BACKOFF[1])

    async def _read(self, api: aiohttp.ClientSession, local: aiohttp.ClientSession) -> None:
        import aiohttp

        path = f"/v1/endpoints/{self.endpoint_id}/stream"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=READ_TIMEOUT)
        async with api.get(self.base + path, timeout=timeout) as response:
            if response.status == 404:
                raise _Gone
            if response.status in (401, 403):
                fail(f"GET {path}: {response.status} {_detail(await response.text())}")
            if response.status != 200:
                raise aiohttp.ClientError(f"{response.status} {_detail(await response.text())}")
            buffer = bytearray()
            async for chunk in response.content.iter_any():
                start = max(0, len(buffer) - 1)
                buffer += chunk
                while (end := buffer.find(b"\n\n", start)) >= 0:
                    self._on_event(bytes(buffer[:end]).decode(), api, local)
                    del buffer[: end + 2]
                    start = 0

    def _on_event(
        self, block: str, api: aiohttp.ClientSession, local: aiohttp.ClientSession
    ) -> None:
        name, data = "message", ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data += line.removeprefix("data:").strip()
        if name == "ready":
            self.state = "connected"
            self._status()
        elif name == "delivery":
            try:
                offer = json.loads(data)
            except ValueError:
                return  # not acknowledged: the gateway sends it again
            task = asyncio.create_task(self._forward(offer, api, local))
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)

    async def _forward(
        self, offer: dict[str, Any], api: aiohttp.ClientSession, local: aiohttp.ClientSession
    ) -> None:
        import base64

        import aiohttp

        body = offer["body"].encode()
        if offer.get("body_encoding") == "base64":
            body = base64.b64decode(offer["body"])
        headers = {k: v for k, v in offer["headers"].items() if k.lower() not in _HOP_HEADERS}
        started = time.perf_counter()
        status: int | None = None
        answer, error = "", None
        try:
            async with local.request(
                offer["method"], self.forward_to, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                answer = (await response.content.read(BODY_LIMIT)).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{self.forward_to}: {exc or type(exc).__name__}"[:1000]
        duration = int((time.perf_counter() - started) * 1000)
        ack = {
            "delivery_id": offer["delivery_id"],
            "attempt": offer["attempt"],
            "status_code": status,
            "body": answer[:BODY_LIMIT],
            "error": error,
        }
        acknowledged = False
        try:
            path = f"/v1/endpoints/{self.endpoint_id}/stream/ack"
            async with api.post(self.base + path, json=ack) as response:
                acknowledged = response.status == 204
        except aiohttp.ClientError:
            pass  # not acknowledged: the gateway retries it
        self._show(
            Forwarded(
                time.strftime("%H:%M:%S"),
                offer["event_type"],
                offer["event_id"],
                offer["delivery_id"],
                offer["attempt"],
                status,
                error,
                duration,
                acknowledged,
            )
        )

    # output

    def _show(self, row: Forwarded) -> None:
        self.count += 1
        if self.as_json:
            out.print_json(json.dumps(row.__dict__), indent=None)
        elif self._live is None:
            out.print(_line(row), markup=False)
        else:
            self.rows.append(row)
            self._live.update(self._table(), refresh=True)

    def _status(self) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
        else:
            note(f"[dim]{escape(self.state)}[/dim]")

    def _display(self) -> Any:
        """A live table on a terminal; else (piped, --json) a line per delivery."""
        import contextlib

        from rich.live import Live

        if self.as_json or not out.is_terminal:
            return contextlib.nullcontext()
        self._live = Live(self._table(), console=out, auto_refresh=False, transient=False)
        return self._live

    def _table(self) -> Table:
        from rich.table import Table

        table = Table(title=f"{self.endpoint_id} → {self.forward_to}: {self.state}")
        for column in ("time", "event type", "event id", "attempt", "local answer", "ms"):
            table.add_column(column, justify="right" if column == "ms" else "left")
        for row in self.rows:
            table.add_row(
                row.at,
                escape(row.event_type),
                row.event_id,
                f"#{row.attempt}",
                _answer(row),
                str(row.duration_ms),
            )
        return table


class _Gone(Exception):
    """The endpoint was deleted while listening: it is made again."""


def _answer(row: Forwarded) -> str:
    if row.status is None:
        shown = f"[red]no answer[/red] {escape(row.error or '')}"
    elif 200 <= row.status < 300:
        shown = f"[green]{row.status}[/green]"
    else:
        shown = f"[yellow]{row.status}[/yellow] (retried)"
    return shown if row.acknowledged else shown + " [dim](too late: retried)[/dim]"


def _line(row: Forwarded) -> str:
    answer = str(row.status) if row.status is not None else f"no answer: {row.error}"
    late = "" if row.acknowledged else " (too late: retried)"
    return (
        f"{row.at} {row.event_type} {row.event_id} #{row.attempt} → {answer}"
        f" {row.duration_ms} ms{late}"
    )


def _detail(text: str) -> str:
    try:
        detail = json.loads(text)["detail"]
    except (ValueError, KeyError, TypeError):
        return text[:200]
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]
