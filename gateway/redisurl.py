"""Where Redis is: a plain URL, or the Sentinels that know which server is the master.

`GATEWAY_REDIS_URL` takes either form; every connection the gateway makes (the
dispatcher, the workers' arq pool, the rate limits, the start-up and doctor
pings) goes through `gateway.queue.connection`, which reads it from here:

    redis://[[user]:password@]host:6379/0      rediss://... (TLS)   unix:///path?db=0
    redis+sentinel://[[user]:password@]host:26379,host2:26379/mymaster/0
    rediss+sentinel://...                      (TLS to the Sentinels and the master)

The user and password are the master's (and its replicas'); the Sentinels are
asked without one, as arq's worker asks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_PORT = 26379
_PLAIN = ("redis", "rediss", "unix")
_SENTINEL = ("redis+sentinel", "rediss+sentinel")
FORMS = (
    "redis://[:password@]host:6379/0, rediss://..., unix:///path, or "
    "redis+sentinel://[:password@]host:26379,host2:26379/mastername/0"
)


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The Sentinel form's parts; None for a plain Redis URL. Raises ValueError, never
    repeating the URL (it may hold the password), when it is neither."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in (*_PLAIN, *_SENTINEL):
        raise ValueError(f"not a Redis URL: expected {FORMS}")
    if scheme in _PLAIN:
        _check_plain(url)
        return None
    netloc, _, path = rest.partition("/")
    path = path.split("?", 1)[0]
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    username, _, password = userinfo.partition(":")
    sentinels = [_host_port(h) for h in hosts.split(",") if h]
    master, _, db = path.partition("/")
    if not sentinels:
        raise ValueError(f"a Sentinel URL names at least one Sentinel host: {FORMS}")
    if not master:
        raise ValueError(f"a Sentinel URL names the master after the hosts: {FORMS}")
    if db and not db.isdigit():
        raise ValueError("the Redis database after the master's name must be a number")
    return SentinelTarget(
        sentinels=sentinels,
        master=unquote(master),
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=scheme == "rediss+sentinel",
    )


def shown(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}{slash}{path}"


def _host_port(text: str) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):  # [::1]:26379
        host, _, after = text[1:].partition("]")
        port = after.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or (port and not port.isdigit()) or not 0 < int(port or SENTINEL_PORT) < 65536:
        raise ValueError("each Sentinel is host or host:port, separated by commas")
    return host, int(port or SENTINEL_PORT)


def _check_plain(url: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (a bad port raises)
    except ValueError:
        raise ValueError(f"the Redis URL's port is not a number: expected {FORMS}") from None
    db = parts.path.lstrip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ValueError("the Redis database in the URL's path must be a number")
