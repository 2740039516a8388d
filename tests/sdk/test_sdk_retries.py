"""The SDK's retries against a scripted HTTP server on loopback: what is tried again, how
soon, with the same Idempotency-Key, and what is raised when it gives up."""

from __future__ import annotations

import asyncio
import email.utils
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hookgate
import pytest
from hookgate import AsyncClient, Client, Retries
from hookgate._core import retry_after_seconds

from tests.support.gateway import free_port

PUBLISHED = {
    "id": "evt_1",
    "type": "invoice.paid",
    "data": {"amount": 12},
    "tenant_id": None,
    "source_id": None,
    "created_at": "2026-12-06T10:00:00Z",
    "deliveries": 1,
}
FAST = Retries(max_retries=3, backoff=0.01, max_backoff=0.02)


@dataclass
class Answer:
    status: int = 202
    body: object = None
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False  # close the connection without answering
    delay: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up waiting (the timeout test) is no error here


class ScriptedServer:
    """Answers each request with the next scripted answer (the last one repeats), and
    keeps every request's headers."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
                outer.requests.append({k.lower(): v for k, v in self.headers.items()})
                answer = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    return
                payload = json.dumps(answer.body if answer.body is not None else PUBLISHED)
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def keys(self) -> list[str | None]:
        return [request.get("idempotency-key") for request in self.requests]


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key() -> None:
    limited = Answer(429, {"detail": "rate limit exceeded"}, (("Retry-After", "1"),))
    with ScriptedServer(limited, Answer(202)) as server, Client(server.url, "key") as client:
        started = time.monotonic()
        event = client.events.publish("invoice.paid", {"amount": 12})
        waited = time.monotonic() - started
    assert event.id == "evt_1" and event.deliveries == 1
    assert len(server.requests) == 2 and waited >= 1.0
    [key, again] = server.keys()
    assert key and key == again
    assert server.requests[0]["authorization"] == "Bearer key"


def test_async_publish_survives_a_dropped_connection_and_a_503() -> None:
    answers = (Answer(drop=True), Answer(503, {"detail": "the database is unavailable"}), Answer())

    async def publish_twice(url: str) -> None:
        async with AsyncClient(url, "key", retries=FAST) as client:
            await client.events.publish("invoice.paid", {"amount": 12})
            await client.events.publish("invoice.paid", {"amount": 12})

    with ScriptedServer(*answers) as server:
        asyncio.run(publish_twice(server.url))
    first, *retries, second = server.keys()
    assert len(retries) == 2 and set(retries) == {first}
    assert second != first  # a new call, a new key


def test_a_batch_keeps_its_generated_keys_across_retries() -> None:
    batch = {"events": [{**PUBLISHED, "created": True}]}
    with ScriptedServer(Answer(drop=True), Answer(202, batch)) as server:
        with Client(server.url, "key", retries=FAST) as client:
            published = client.events.publish_batch([{"type": "invoice.paid", "data": {}}])
    assert published.events[0].created
    keys = [json.loads(body)["events"][0]["idempotency_key"] for body in server.bodies]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


def test_what_may_have_been_done_is_not_repeated_unless_safe() -> None:
    # Creating an endpoint twice would make two: a 503 or a dropped answer is raised.
    with ScriptedServer(Answer(503, {"detail": "the database is unavailable"})) as server:
        with Client(server.url, "key", retries=FAST) as client:
            with pytest.raises(hookgate.ServerError) as raised:
                client.endpoints.create("https://example.com/hooks")
    assert raised.value.status_code == 503
    assert raised.value.detail == "the database is unavailable"
    assert len(server.requests) == 1
    with ScriptedServer(Answer(drop=True)) as server:
        with Client(server.url, "key", retries=FAST) as client:
            with pytest.raises(hookgate.APIConnectionError):
                client.endpoints.create("https://example.com/hooks")
            assert len(server.requests) == 1
            # A read is safe: tried 1 + 3 times.
            with pytest.raises(hookgate.APIConnectionError):
                client.events.get("evt_1")
    assert len(server.requests) == 5


def test_giving_up() -> None:
    unavailable = Answer(503, {"detail": "the database is unavailable"})
    with ScriptedServer(unavailable) as server, Client(server.url, "key", retries=FAST) as client:
        with pytest.raises(hookgate.ServerError):
            client.events.get("evt_1")
        assert len(server.requests) == 4
        # A Retry-After beyond max_retry_after is not waited for.
        limited = Answer(429, {"detail": "rate limit exceeded"}, (("Retry-After", "3600"),))
        server.answers = [limited]
        with pytest.raises(hookgate.RateLimitError) as raised:
            client.events.get("evt_1")
        assert raised.value.detail == "rate limit exceeded" and len(server.requests) == 5
        # No answer in time.
        server.answers = [Answer(delay=0.5)]
        with Client(server.url, "key", retries=0, timeout=0.1) as impatient:
            with pytest.raises(hookgate.APITimeoutError):
                impatient.events.get("evt_1")
    # Nobody listening: never sent, so retried whatever the operation.
    refused = f"http://127.0.0.1:{free_port()}"
    with Client(refused, "key", retries=FAST) as client:
        with pytest.raises(hookgate.APIConnectionError):
            client.endpoints.create("https://example.com/hooks")


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    in_a_minute = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=60), True)
    assert retry_after_seconds("5") == 5.0
    assert 55 < (retry_after_seconds(in_a_minute) or 0) <= 60
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
