"""What the client raises.

    HookgateError
    ├── APIError              the gateway answered with an error status
    │   ├── BadRequestError           400
    │   ├── AuthenticationError       401: no key, or a wrong or revoked one
    │   ├── PermissionDeniedError     403: the key may not do this (a tenant's key)
    │   ├── NotFoundError             404
    │   ├── ConflictError             409: e.g. an Idempotency-Key reused with another body
    │   ├── PayloadTooLargeError      413
    │   ├── UnprocessableEntityError  422: `problems` lists each field and why
    │   ├── RateLimitError            429: still limited after the retries
    │   └── ServerError               5xx: still failing after the retries
    ├── APIConnectionError    no answer: the gateway could not be reached, or hung up
    │   └── APITimeoutError           no answer in time
    └── SignatureError        `verify` refused a webhook (from hookgate.webhooks)

Every `APIError` carries the HTTP `status_code`, the API's `detail` (a string, or for a
422 the list of problems) and the `response`.
"""

from __future__ import annotations

from typing import Any

import httpx

from hookgate.models import ValidationProblem


class HookgateError(Exception):
    """Anything this package raises."""


class APIError(HookgateError):
    """The gateway answered with an error status."""

    def __init__(self, status_code: int, detail: Any, response: httpx.Response) -> None:
        self.status_code = status_code
        self.detail = detail
        self.response = response
        super().__init__(f"{status_code}: {_describe(detail)}")


class BadRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class PayloadTooLargeError(APIError):
    pass


class UnprocessableEntityError(APIError):
    """The request was refused; `problems` says which field and why."""

    @property
    def problems(self) -> list[ValidationProblem]:
        if not isinstance(self.detail, list):
            return []
        return [ValidationProblem.model_validate(item) for item in self.detail]


class RateLimitError(APIError):
    pass


class ServerError(APIError):
    pass


class APIConnectionError(HookgateError):
    """No answer from the gateway; the transport's exception is the `__cause__`."""


class APITimeoutError(APIConnectionError):
    pass


class SignatureError(HookgateError):
    """A webhook whose signature, timestamp or headers do not verify."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for(response: httpx.Response) -> APIError:
    """The exception for an error answer, with the API's `detail` when it sent one."""
    try:
        body = response.json()
        detail = body["detail"] if isinstance(body, dict) and "detail" in body else body
    except ValueError:
        detail = response.text
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else APIError
    return cls(response.status_code, detail, response)


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
