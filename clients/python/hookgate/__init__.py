"""The Python client of the hookgate webhook gateway: publish events, manage endpoints,
read deliveries (`Client`, `AsyncClient`), and check the webhooks it sends (`verify`)."""

from __future__ import annotations

__version__ = "0.1.0"

from hookgate._client import AsyncClient, Client
from hookgate._core import Retries
from hookgate.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HookgateError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SignatureError,
    UnprocessableEntityError,
)
from hookgate.webhooks import verify

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "HookgateError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Retries",
    "ServerError",
    "SignatureError",
    "UnprocessableEntityError",
    "__version__",
    "verify",
]
