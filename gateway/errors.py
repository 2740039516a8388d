"""Errors the services raise; each carries the HTTP status the API answers with.

Routers never build error responses by hand: a service raises one of these and the
handler in `main.py` turns it into `{"detail": ...}` with its status.
"""

from __future__ import annotations


class GatewayError(Exception):
    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(GatewayError):
    """No credential, or a wrong one: an API key, or an inbound request's signature."""

    status_code = 401


class Forbidden(GatewayError):
    status_code = 403


class NotFound(GatewayError):
    status_code = 404


class Conflict(GatewayError):
    status_code = 409


class UnsupportedMediaType(GatewayError):
    """A body that does not say it is JSON, sent to a route that takes JSON."""

    status_code = 415


class Invalid(GatewayError):
    """A request that is well-formed JSON but names something impossible."""

    status_code = 422

    def __init__(self, detail: str, loc: tuple[str | int, ...] = ("body",)) -> None:
        super().__init__(detail)
        self.loc = loc


class TooManyRequests(GatewayError):
    status_code = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """Something the request needs (other than the database) does not answer now."""

    status_code = 503
