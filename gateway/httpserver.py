"""uvicorn's httptools protocol with the two bounds it lacks: how large a request's
head may be, and how long a request may take to arrive.

uvicorn bounds neither with httptools (its h11 protocol bounds the head, but costs
a third of the API's throughput): one 100 MB header took a process 20 s of CPU and
its memory, and connections sending a byte a second stayed open for ever. Here a
head over `GATEWAY_MAX_HEADER_BYTES` is answered 431, and a request whose head and
body have not all arrived within `GATEWAY_REQUEST_TIMEOUT` of its first byte (or of
the connection, before the first request) is answered 408, or cut off if the app
is already reading its body, which then sees the client gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.settings import get_settings

log = logging.getLogger("gateway.http")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._max_head = settings.max_header_bytes
        self._read_timeout = settings.request_timeout
        self._in_head = True  # reading a request's head, or waiting for one
        self._head_bytes = 0
        self._carry = b""  # the last bytes of the head so far: its end may span two reads
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # The head is measured before the parser sees it: httptools keeps a header
        # however long it grows, so a check after parsing would come too late.
        if self._in_head:
            head = self._head_part(data)
            self._head_bytes += len(data) if head < 0 else head
            if self._head_bytes > self._max_head:
                self._refuse(
                    431, f"request headers are larger than the limit of {self._max_head} bytes"
                )
                return
            if head >= 0:
                self._in_head = False
        super().data_received(data)

    def _head_part(self, data: bytes) -> int:
        """How many bytes of `data` end the head (through its blank line); -1 if none do."""
        carried = self._carry
        window = carried + data
        self._carry = window[-3:]
        ends = [(i, len(mark)) for mark in (b"\r\n\r\n", b"\n\n") if (i := window.find(mark)) >= 0]
        if not ends:
            return -1
        at, size = min(ends)
        return max(0, at + size - len(carried))

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._carry = True, 0, b""
        self._disarm()  # between requests, uvicorn's keep-alive timeout applies

    # the deadline

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self._read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self._refuse(408, f"the request did not arrive within {self._read_timeout:g} seconds")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer and close; only close once the app has this request (its head arrived),
        or is still answering the one before."""
        self._disarm()
        if not self._in_head or (self.cycle is not None and not self.cycle.response_complete):
            log.info("connection closed: %s", detail)
            self.transport.close()
            return
        log.info("request refused with %d: %s", status, detail)
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: ",
                    str(len(body)).encode(),
                    b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
