"""What the sync and async clients share: each API operation declared once, the request it
builds, how its answer is read, and when a failed attempt is tried again.

An operation is a method of a resource class whose body returns the call's variable
parts (`Parts`); the `operation` decorator adds the route and the answer's model, and
turns it into a descriptor. Read from a resource bound to the sync client it is a plain
method returning the model; from the async client, a coroutine function. The clients
(`_client.py`) only send `Call`s: the wire, the retries' sleeps, and pagination's loop.
"""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from hookgate.models import Page

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M")


class Sync:
    """Marks resources bound to `hookgate.Client`."""


class Async:
    """Marks resources bound to `hookgate.AsyncClient`."""


@dataclass(frozen=True)
class Parts:
    """What an operation's method returns: the variable parts of its request."""

    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """An operation's fixed parts, also read by the test that checks them against the
    gateway's OpenAPI document."""

    method: str
    path: str
    returns: type[Any]
    body: type[BaseModel] | None
    # Whether an attempt that may have reached the gateway can be sent again without a
    # second effect: reads, PUT/PATCH/DELETE, and publishes (they carry idempotency keys).
    retry_safe: bool
    # Error statuses that still answer with the model (`/readyz` answers 503 when not ready).
    answers: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Call:
    """One request, ready to send, and how to read its answer. Built once per call, so
    its retries send the very same request (Idempotency-Key included)."""

    route: Route
    path: str
    params: dict[str, Any]
    json: Any
    headers: dict[str, str]

    def parse(self, response: httpx.Response) -> Any:
        returns = self.route.returns
        if returns is type(None):
            return None
        if isinstance(returns, type) and issubclass(returns, BaseModel):
            return returns.model_validate(response.json())
        return response.json()

    def with_cursor(self, cursor: str) -> Call:
        return Call(self.route, self.path, {**self.params, "cursor": cursor}, None, self.headers)


class Runner(Protocol):
    """What a resource needs of its client."""

    def _run(self, call: Call) -> Any: ...

    def _paginate(self, call: Call) -> Any: ...

    def _stream(self, call: Call) -> Any: ...


class Resource(Generic[M]):
    """A group of operations, bound to a client (`Resource[Sync]` or `Resource[Async]`)."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner


def build_call(route: Route, parts: Parts) -> Call:
    path = route.path.format_map({k: quote(v, safe="") for k, v in parts.path.items()})
    params = {k: _query_value(v) for k, v in parts.query.items() if v is not None}
    json = None
    if route.body is not None:
        json = _body_json(route.body, parts.body)
    elif parts.body is not None:
        json = parts.body
    return Call(route, path, params, json, dict(parts.headers))


def _query_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _body_json(model: type[BaseModel], body: Any) -> Any:
    """The body as the gateway reads it: checked against the model first, and with only
    the fields the caller gave (an update's left-out field is left alone, `None` clears)."""
    checked = body if isinstance(body, model) else model.model_validate(body or {})
    dumped = checked.model_dump(mode="json", by_alias=True)
    given = {(model.model_fields[name].alias or name) for name in checked.model_fields_set}
    return {key: value for key, value in dumped.items() if key in given}


class Operation(Generic[P, T]):
    """An operation as a descriptor: typed per client by the resource it is read from."""

    def __init__(self, route: Route, build: Callable[Concatenate[Any, P], Parts]) -> None:
        self.route = route
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Operation[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            return obj._runner._run(build_call(self.route, self.build(obj, *args, **kwargs)))

        bound.__doc__ = self.__doc__
        bound.__name__ = self.build.__name__
        return bound


class Pages(Generic[P, T]):
    """Every item of a paginated list, page after page along `next_cursor`: an iterator
    from the sync client, an async iterator from the async one."""

    def __init__(self, operation: Operation[P, Page[T]]) -> None:
        self.operation = operation
        self.__doc__ = operation.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Pages[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        operation = self.operation

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            parts = operation.build(obj, *args, **kwargs)
            return obj._runner._paginate(build_call(operation.route, parts))

        bound.__doc__ = self.__doc__
        return bound


class Stream(Generic[P, T]):
    """Server-sent events read as they come: an iterator of the `returns` model (one per
    `event: delivery`) from the sync client, an async iterator from the async one. Never
    retried: the stream ends when the connection does, and the caller reconnects."""

    def __init__(self, route: Route, build: Callable[Concatenate[Any, P], Parts]) -> None:
        self.route = route
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Stream[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            return obj._runner._stream(build_call(self.route, self.build(obj, *args, **kwargs)))

        bound.__doc__ = self.__doc__
        return bound


def stream(
    path: str, returns: type[T]
) -> Callable[[Callable[Concatenate[Any, P], Parts]], Stream[P, T]]:
    """Declare a `GET` answered with server-sent events."""
    route = Route("GET", path, returns, None, retry_safe=False)

    def declare(build: Callable[Concatenate[Any, P], Parts]) -> Stream[P, T]:
        return Stream(route, build)

    return declare


class ServerSentEvents:
    """A text/event-stream read line by line: `feed` answers (event, data) as each ends."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            found = (self._event, "\n".join(self._data)) if self._data else None
            self._event, self._data = "message", []
            return found
        if line.startswith(":"):  # a comment: the gateway's keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def operation(
    method: str,
    path: str,
    returns: type[T],
    *,
    body: type[BaseModel] | None = None,
    retry_safe: bool | None = None,
    answers: frozenset[int] = frozenset(),
) -> Callable[[Callable[Concatenate[Any, P], Parts]], Operation[P, T]]:
    """Declare an operation: the decorated method returns its request's `Parts`."""
    route = Route(
        method,
        path,
        returns,
        body,
        method in ("GET", "PUT", "PATCH", "DELETE") if retry_safe is None else retry_safe,
        answers,
    )

    def declare(build: Callable[Concatenate[Any, P], Parts]) -> Operation[P, T]:
        return Operation(route, build)

    return declare


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


# Retries


@dataclass(frozen=True)
class Retries:
    """When and how soon a failed attempt is tried again.

    Tried again: an attempt that never reached the gateway (connection refused, DNS, pool
    timeout), and a 429, for every operation; a 5xx, a timeout or a dropped connection for
    operations that are safe to repeat (`Route.retry_safe`). Waits grow from `backoff`,
    doubling up to `max_backoff`, with jitter; a `Retry-After` is a floor, and one longer
    than `max_retry_after` gives up at once (the error is raised).
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(
        self,
        call: Call,
        retries_done: int,
        response: httpx.Response | None = None,
        error: Exception | None = None,
    ) -> float | None:
        """Seconds to wait before trying `call` again, or None to give up."""
        if retries_done >= self.max_retries:
            return None
        if error is not None:
            never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
            never_sent = never_sent or isinstance(error, httpx.PoolTimeout)
            if not (never_sent or (call.route.retry_safe and _transient(error))):
                return None
            return self._backoff(retries_done)
        assert response is not None
        status = response.status_code
        if status != 429 and not (status >= 500 and call.route.retry_safe):
            return None
        wait = self._backoff(retries_done)
        after = retry_after_seconds(response.headers.get("retry-after"))
        if after is not None:
            if after > self.max_retry_after:
                return None
            wait = max(wait, after)
        return wait

    def _backoff(self, retries_done: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2.0**retries_done)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _transient(error: Exception) -> bool:
    return isinstance(
        error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    )


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` in seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
