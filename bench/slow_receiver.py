"""Bad endpoints, for W4 and the isolation tests. By the path's first segment:

- `/slow...` answers 204 after 10 s;
- `/never...` holds the request until the client gives up;
- `/trickle...` sends its status line and headers, then a body of one byte a second;
- `/slow-headers...` sends its status line and headers one byte a second;
- `/huge...` answers 200 with a 1 GB body, as fast as the client reads it.

    python bench/slow_receiver.py PORT [PORT ...]

Every port serves every route; a workload uses one port per bad endpoint when it wants
them on separate hosts. HTTP is spoken by hand here (asyncio streams), since the point
is to answer the way a well-behaved server never would.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

SLOW_SECONDS = 10.0
# "Never" within any delivery timeout the gateway allows (at most 300 s).
NEVER_SECONDS = 3600.0
DRIP_SECONDS = 1.0  # between the bytes of /trickle's body and /slow-headers' head
HUGE_BYTES = 1 << 30
CHUNK = b"\0" * 65536
MAX_HEAD = 64 * 1024


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    """The request's path, its body read and dropped; None when the client is gone."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    if length:
        await reader.readexactly(length)
    return parts[1]


async def _drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
        await asyncio.sleep(DRIP_SECONDS)


async def _answer(path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Answer one request; False when the connection must close after it."""
    if path == "/healthz":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    elif path.startswith("/slow-headers"):
        await _drip(writer, b"HTTP/1.1 204 No Content\r\nX-Slow: " + b"a" * 3600 + b"\r\n\r\n")
    elif path.startswith("/slow"):
        await asyncio.sleep(SLOW_SECONDS)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    elif path.startswith("/never"):
        # Until the client hangs up (read() ends at its EOF), or "never".
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(), NEVER_SECONDS)
        return False
    elif path.startswith("/trickle"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3600\r\n\r\n")
        await _drip(writer, b"a" * 3600)
    elif path.startswith("/huge"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE_BYTES)
        for _ in range(HUGE_BYTES // len(CHUNK)):
            writer.write(CHUNK)
            await writer.drain()
    else:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return True


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Every way a client can go away mid-answer ends the connection quietly.
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
        while (path := await _read_request(reader)) is not None:
            if not await _answer(path, reader, writer):
                break
    writer.close()


async def serve(ports: list[int]) -> None:
    servers = [
        await asyncio.start_server(_connection, "127.0.0.1", port, backlog=4096, limit=MAX_HEAD)
        for port in ports
    ]
    try:
        await asyncio.Event().wait()
    finally:
        for server in servers:
            server.close()


def main() -> None:
    try:
        import uvloop
    except ImportError:  # the tests run it too, where uvloop may not be installed
        asyncio.run(serve([int(p) for p in sys.argv[1:]]))
    else:
        uvloop.run(serve([int(p) for p in sys.argv[1:]]))


if __name__ == "__main__":
    main()
