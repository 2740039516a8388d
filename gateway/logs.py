"""Logging set-up for every process: one line per record, to stderr, with secrets masked.

JSON lines (python-json-logger) for machines, or plain text on a terminal. Records
carry the request id of the HTTP request they happened in, and the delivery code
adds event, delivery and endpoint ids. Nothing secret is logged on purpose; the
filter is the second line of defence, for text that reaches a log from elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

_SECRETS = re.compile(
    r"whsec_[A-Za-z0-9+/=]+"  # endpoint and Standard Webhooks secrets
    r"|gw_[A-Za-z0-9_\-]{16,}"  # API keys
    r"|(?i:bearer)\s+\S+"  # Authorization values
    r"|v[01][,=][A-Za-z0-9+/=]{20,}"  # Standard Webhooks, Stripe and Slack signatures
    r"|sha(?:1|256|512)=[0-9a-fA-F]{20,}"  # GitHub-style signatures
)


REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRETS.sub("[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            # Format the traceback here so that its text can be masked as well.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, _SECRETS.sub("[redacted]", text)
        return True


# What every LogRecord has; anything else on a record came from `extra=` and is context.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
    "request_id",  # added below when set
}


class ConsoleFormatter(logging.Formatter):
    """One line for a terminal, with the same context the JSON lines carry (event,
    delivery, endpoint, status, error...) as `key=value` after the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_") and value is not None
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            context["request_id"] = request_id
        if not context:
            return line
        head, newline, rest = line.partition("\n")  # a traceback stays below the line
        pairs = " ".join(f"{key}={_shown(value)}" for key, value in context.items())
        return f"{head} {pairs}{newline}{rest}"


def _shown(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' ="\n') else text


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """`fmt`: json, console, or auto (console on a terminal, JSON otherwise)."""
    root = logging.getLogger()
    if not any(getattr(h, "_gateway", False) for h in root.handlers):
        handler = logging.StreamHandler()
        if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
            handler.setFormatter(
                JsonFormatter(
                    "%(asctime)s %(levelname)s %(name)s %(message)s",
                    rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                )
            )
        else:
            handler.setFormatter(ConsoleFormatter())
        handler.addFilter(RequestContext())
        handler.addFilter(RedactSecrets())
        handler._gateway = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())


class Throttled:
    """Logs a recurring warning at most once per `every` seconds, counting what it skipped.

    An outage (Redis down, say) must not turn every request into a log line.
    """

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self._logger = logger
        self._every = every
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self._every) < self._every:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        suffix = f" ({skipped} more like it since the last report)" if skipped else ""
        self._logger.warning(message + suffix, *args)
