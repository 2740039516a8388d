"""The sync and async clients: they send the calls the resources build (hookgate._core),
trying again as `Retries` says, and raise `hookgate.errors` for error answers."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from hookgate import __version__
from hookgate._core import Async, Call, Retries, ServerSentEvents, Sync
from hookgate.errors import APIConnectionError, APITimeoutError, error_for
from hookgate.models import Page
from hookgate.resources import (
    ApiKeys,
    Deliveries,
    Endpoints,
    Events,
    EventTypes,
    PortalLinks,
    Root,
    Sources,
)

log = logging.getLogger("hookgate")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# A stream is quiet for up to 10 s between the gateway's keep-alives: three missed, it is gone.
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class _Settings:
    """What both clients are configured with."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout | None,
        retries: Retries | int | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        api_key = api_key or os.environ.get("HOOKGATE_API_KEY")
        if not api_key:
            raise ValueError("an API key is needed: pass api_key= or set HOOKGATE_API_KEY")
        url = base_url or os.environ.get("HOOKGATE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if isinstance(retries, int):
            retries = Retries(max_retries=retries)
        self.retries = retries or Retries()
        self.headers = {
            **(headers or {}),
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"hookgate-python/{__version__}",
        }

    def request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        call: Call,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Request:
        return http.build_request(
            call.route.method,
            self.base_url + call.path,
            params=call.params,
            json=call.json,
            headers={**self.headers, **call.headers},
            timeout=timeout or self.timeout,
        )


def _answered(call: Call, response: httpx.Response) -> bool:
    return response.is_success or response.status_code in call.route.answers


def _retrying(call: Call, wait: float, why: httpx.Response | Exception) -> None:
    reason = why.status_code if isinstance(why, httpx.Response) else type(why).__name__
    log.info("%s %s: %s, trying again in %.2f s", call.route.method, call.path, reason, wait)


def _unreachable(error: httpx.TransportError) -> APIConnectionError:
    kind = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    return kind(f"no answer from the gateway: {type(error).__name__}: {error}")


class Client(Root[Sync]):
    """The gateway's API, over HTTP, blocking.

    `base_url` and `api_key` default to `HOOKGATE_BASE_URL` and `HOOKGATE_API_KEY`.
    `retries` is a `Retries` or a number of retries (0: none); `http_client` an
    `httpx.Client` of your own (proxies, certificates), which `close` leaves open.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: Retries | int | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(self)
        self._settings = _Settings(base_url, api_key, timeout, retries, headers)
        self._own_http = http_client is None
        self._http = http_client or httpx.Client()
        self.events: Events[Sync] = Events(self)
        self.deliveries: Deliveries[Sync] = Deliveries(self)
        self.endpoints: Endpoints[Sync] = Endpoints(self)
        self.event_types: EventTypes[Sync] = EventTypes(self)
        self.sources: Sources[Sync] = Sources(self)
        self.api_keys: ApiKeys[Sync] = ApiKeys(self)
        self.portal_links: PortalLinks[Sync] = PortalLinks(self)

    def _run(self, call: Call) -> Any:
        response = self._send(call)
        if not _answered(call, response):
            raise error_for(response)
        return call.parse(response)

    def _send(self, call: Call) -> httpx.Response:
        retries = self._settings.retries
        done = 0
        while True:
            try:
                response = self._http.send(self._settings.request(self._http, call))
            except httpx.TransportError as error:
                wait = retries.delay(call, done, error=error)
                if wait is None:
                    raise _unreachable(error) from error
                _retrying(call, wait, error)
            else:
                if _answered(call, response):
                    return response
                wait = retries.delay(call, done, response=response)
                if wait is None:
                    return response
                _retrying(call, wait, response)
            time.sleep(wait)
            done += 1

    def _paginate(self, call: Call) -> Iterator[Any]:
        while True:
            page: Page[Any] = self._run(call)
            yield from page.data
            if not page.next_cursor:
                return
            call = call.with_cursor(page.next_cursor)

    def _stream(self, call: Call) -> Iterator[Any]:
        request = self._settings.request(self._http, call, STREAM_TIMEOUT)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise _unreachable(error) from error
        try:
            if not response.is_success:
                response.read()
                raise error_for(response)
            events = ServerSentEvents()
            for line in response.iter_lines():
                found = events.feed(line)
                if found and found[0] == "delivery":
                    yield call.route.returns.model_validate_json(found[1])
        except httpx.TransportError as error:
            raise _unreachable(error) from error
        finally:
            response.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(Root[Async]):
    """The gateway's API, over HTTP, for asyncio: every operation is a coroutine, and
    every `list` an async iterator. Configured as `Client` is."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: Retries | int | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(self)
        self._settings = _Settings(base_url, api_key, timeout, retries, headers)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self.events: Events[Async] = Events(self)
        self.deliveries: Deliveries[Async] = Deliveries(self)
        self.endpoints: Endpoints[Async] = Endpoints(self)
        self.event_types: EventTypes[Async] = EventTypes(self)
        self.sources: Sources[Async] = Sources(self)
        self.api_keys: ApiKeys[Async] = ApiKeys(self)
        self.portal_links: PortalLinks[Async] = PortalLinks(self)

    async def _run(self, call: Call) -> Any:
        response = await self._send(call)
        if not _answered(call, response):
            raise error_for(response)
        return call.parse(response)

    async def _send(self, call: Call) -> httpx.Response:
        retries = self._settings.retries
        done = 0
        while True:
            try:
                response = await self._http.send(self._settings.request(self._http, call))
            except httpx.TransportError as error:
                wait = retries.delay(call, done, error=error)
                if wait is None:
                    raise _unreachable(error) from error
                _retrying(call, wait, error)
            else:
                if _answered(call, response):
                    return response
                wait = retries.delay(call, done, response=response)
                if wait is None:
                    return response
                _retrying(call, wait, response)
            await asyncio.sleep(wait)
            done += 1

    async def _paginate(self, call: Call) -> AsyncIterator[Any]:
        while True:
            page: Page[Any] = await self._run(call)
            for item in page.data:
                yield item
            if not page.next_cursor:
                return
            call = call.with_cursor(page.next_cursor)

    async def _stream(self, call: Call) -> AsyncIterator[Any]:
        request = self._settings.request(self._http, call, STREAM_TIMEOUT)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise _unreachable(error) from error
        try:
            if not response.is_success:
                await response.aread()
                raise error_for(response)
            events = ServerSentEvents()
            async for line in response.aiter_lines():
                found = events.feed(line)
                if found and found[0] == "delivery":
                    yield call.route.returns.model_validate_json(found[1])
        except httpx.TransportError as error:
            raise _unreachable(error) from error
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
