"""The bootstrap API key: `GATEWAY_API_KEY`, or in embedded mode one generated on first start.

A generated key is kept in a file beside the database, readable only by its
owner, and printed once, so a new user is neither locked out nor left open.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from gateway.settings import Settings

log = logging.getLogger("gateway.apikey")

KEY_FILE = "gateway.api_key"


def generate_key() -> str:
    return "gw_" + secrets.token_urlsafe(32)


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def bootstrap_key_origin(settings: Settings) -> str | None:
    """Where `resolve_api_key` takes the bootstrap key from, without reading or making
    it: "GATEWAY_API_KEY", the key file (embedded mode, once `gateway serve` has
    generated it), or None (none yet, or none at all outside embedded mode)."""
    if settings.api_key:
        return "GATEWAY_API_KEY"
    if settings.embedded and key_file(settings).exists():
        return str(key_file(settings))
    return None


def resolve_api_key(settings: Settings) -> str | None:
    if settings.api_key:
        return settings.api_key
    if not settings.embedded:
        log.warning(
            "GATEWAY_API_KEY is not set: only keys made with `gateway keys create` are accepted"
        )
        return None
    path = key_file(settings)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        log.info("using the API key kept in %s", path)
        return key
    key = generate_key()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    print(
        f"\n  No GATEWAY_API_KEY was set, so one was generated and saved to {path}:\n\n"
        f"      {key}\n\n"
        f"  Send it as 'Authorization: Bearer <key>'. It is printed only this once;\n"
        f"  set GATEWAY_API_KEY to choose your own.\n",
        file=sys.stderr,
        flush=True,
    )
    return key
