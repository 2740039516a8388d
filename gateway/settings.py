"""The one settings object: every knob is a `GATEWAY_` environment variable, checked at start."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from gateway.crypto import parse_key
from gateway.redisurl import parse_sentinel

DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"
_ASYNC_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


ENV_FILE = ".env"
ENV_FILE_VARIABLE = "GATEWAY_ENV_FILE"  # read before the settings, so not one of them


def env_file() -> str | None:
    """The dotenv file read after the environment: `GATEWAY_ENV_FILE`, else `./.env`
    (beside the default database, where `gateway dev-setup` writes); empty reads none."""
    return os.environ.get(ENV_FILE_VARIABLE, ENV_FILE) or None


class Settings(BaseSettings):
    """Configuration of the API, the workers and the CLI (docs/configuration.md lists it).

    Every process reads the same places, in this order: keyword arguments, the
    environment, then the dotenv file (`env_file()`), so that the CLI, the server and
    the workers started from one directory agree.
    """

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", env_file_encoding="utf-8"
    )

    def __init__(self, **values: Any) -> None:
        values.setdefault("_env_file", env_file())
        super().__init__(**values)

    database_url: str = Field(
        "sqlite+aiosqlite:///./gateway.db",
        description="SQLAlchemy async URL of the database: `postgresql+asyncpg://...` in "
        "production, `sqlite+aiosqlite:///...` for a single embedded process.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for the arq delivery queue and the shared rate limits "
        "(`redis://host:6379/0`, or through Sentinel "
        "`redis+sentinel://host:26379,host2:26379/mastername/0`); unset means embedded "
        "mode, where `gateway serve` delivers in-process.",
    )
    api_key: str | None = Field(
        None,
        description="Bootstrap admin API key (`Authorization: Bearer <key>`); unset, embedded "
        "mode generates one into `gateway.api_key` beside the database, and otherwise only "
        "keys created with `gateway keys create` or `POST /v1/api-keys` are accepted.",
    )
    # Encrypts secrets at rest (32 bytes, URL-safe base64); old keys still open values
    # sealed under them until `gateway secret-key rotate` has re-sealed everything.
    secret_key: str | None = Field(
        None,
        description="Key that encrypts endpoint and source secrets and custom header values "
        "at rest (32 bytes, URL-safe base64, from `gateway secret-key generate`); required "
        "unless the database is SQLite, where one is generated into `gateway.secret_key`.",
    )
    old_secret_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated previous secret keys, still accepted for reading "
        "while `gateway secret-key rotate` re-encrypts everything under the current key.",
    )
    allowed_networks: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = (
        Field(
            default_factory=list,
            description="Comma-separated CIDRs that endpoints may reach although they are "
            "private, loopback or otherwise refused (for example `10.1.0.0/16`).",
        )
    )
    # Name servers (`host` or `host:port`) to resolve endpoint hosts with; empty: the system's.
    dns_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated name servers (`host` or `host:port`) that resolve "
        "endpoint hosts; empty uses the system's resolver.",
    )
    egress_proxy: str | None = Field(
        None,
        description="An HTTP CONNECT proxy (`http://host:port`) that every delivery and "
        "OAuth2 token request goes through, for receivers that allow-list its address. "
        "The gateway still resolves and checks each destination itself and asks the proxy "
        "for the checked address only; the proxy's own address is not checked.",
    )
    retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [float(s) for s in DEFAULT_RETRY_SCHEDULE.split(",")],
        description="Comma-separated seconds to wait after each failed attempt, spread by "
        "about 20%; a delivery gets one attempt more than there are entries.",
    )
    delivery_timeout: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Seconds one delivery attempt may take, from connecting to the last byte "
        "of the answer.",
    )
    transform_timeout_ms: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Milliseconds one run of a transformation (an endpoint's or a source's "
        "JavaScript) may take; past it the run is stopped and fails.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body the API and inbound routes accept, in bytes "
        "(413 above it).",
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="Largest request head (request line and headers) the API and inbound "
        "routes accept, in bytes (431 above it).",
    )
    request_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a request's headers and body may take to arrive, from its first "
        "byte (or from the connection, for its first request); 408 and the connection "
        "closed after that.",
    )
    # Requests per second, per API key and per inbound source (each can set its own).
    api_rate_limit: int = Field(
        1000,
        ge=1,
        description="Requests per second allowed per API key, unless the key sets its own "
        "(429 with Retry-After above it).",
    )
    inbound_rate_limit: int = Field(
        1000,
        ge=1,
        description="Requests per second allowed per inbound source, unless the source sets "
        "its own (429 with Retry-After above it).",
    )
    auth_failure_rate_limit: float = Field(
        5.0,
        gt=0,
        description="Failed attempts per second allowed per client address (a wrong or "
        "missing API key, an inbound request whose signature fails), with a second's worth "
        "at once; past it the address gets 429 before any credential is checked. Per API "
        "process.",
    )

    # Queue and worker tuning: arq's defaults cap a worker near 200 jobs/s (poll delay).
    queue_name: str = Field(
        "gateway:queue",
        description="Name of the arq queue in Redis, also the prefix of the rate-limit keys; "
        "the API and all workers must use the same one.",
    )
    worker_max_jobs: int = Field(
        200,
        ge=1,
        description="Jobs one worker process (or an embedded `gateway serve`) runs at once; "
        "one job sends an event to many endpoints.",
    )
    worker_poll_delay: float = Field(
        0.02,
        gt=0,
        le=5,
        description="Seconds a worker waits between polls of the queue; a job queued to "
        "run now wakes it at once, so this bounds only the wait for jobs put off until "
        "later (retries) and for a wake-up lost.",
    )
    job_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds an arq job may run, which is also the lease on the deliveries "
        "it claims; unset means 2 x GATEWAY_DELIVERY_TIMEOUT + 10, the smallest allowed.",
    )
    # In-flight HTTP requests per process, and per endpoint, so that slow endpoints
    # cannot take what answering ones need (`outbound/load.py`).
    delivery_concurrency: int = Field(
        500,
        ge=1,
        description="HTTP delivery attempts being sent at once per process. An attempt "
        "unanswered after a second gives its slot back and goes on in the slow lane, "
        "which holds at most half as many again (a quarter of that per tenant).",
    )
    connections_per_host: int = Field(
        50,
        ge=1,
        description="Attempts under way at once to one endpoint, per process. One that "
        "answers slowly (over a second) gets a tenth of these, and its further attempts are "
        "put off.",
    )
    # Sweeper: how often it runs and how overdue a delivery must be before it is
    # re-dispatched (its own job had that long to run).
    sweep_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between sweeper runs (workers round it down to whole seconds, "
        "between 1 and 30).",
    )
    sweep_grace: float = Field(
        30.0,
        ge=0,
        description="Seconds a due delivery may wait for its own job before the sweeper "
        "dispatches it again.",
    )
    sweep_batch: int = Field(
        500,
        ge=1,
        description="Overdue deliveries the sweeper takes per database round, up to 20 "
        "rounds per run.",
    )
    # How long the previous secret keeps signing after a rotation.
    secret_rotation_overlap_hours: float = Field(
        24.0,
        ge=0,
        description="Hours the previous endpoint secret keeps signing beside the new one "
        "after a rotation.",
    )
    # Events (with their deliveries and attempts) older than this are purged.
    retention_days: float = Field(
        30.0,
        gt=0,
        description="Days events are kept, with their deliveries and attempts, before the "
        "purge removes them (events with a pending delivery are kept).",
    )
    # A divisor of 60 so the workers' cron can run it at fixed minutes of every hour.
    purge_interval_minutes: int = Field(
        60,
        description="Minutes between retention purges: a divisor of 60 (1, 2, 3, 4, 5, 6, "
        "10, 12, 15, 20, 30 or 60); the workers run it at minute 17 of the hour and every "
        "interval from there.",
    )
    # Endpoint health: failures in a row that open the breaker, its longest open spell,
    # and how long an endpoint may do nothing but fail before it is disabled.
    breaker_threshold: int = Field(
        5,
        ge=1,
        description="Failures in a row (timeouts, connection errors, 5xx, 429) that open an "
        "endpoint's circuit breaker.",
    )
    breaker_base_open: float = Field(
        5.0,
        gt=0,
        description="Seconds the breaker first stays open, doubled with each further failure.",
    )
    breaker_max_open: float = Field(
        300.0,
        gt=0,
        description="Longest time the breaker stays open in one spell, in seconds.",
    )
    disable_after: float = Field(
        5 * 24 * 3600.0,
        gt=0,
        description="Seconds an endpoint may do nothing but fail before it is disabled "
        "(a 410 Gone disables it at once).",
    )
    disable_after_failures: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Deliveries to an endpoint that end failed in a row before it is "
        "disabled (a success resets the count); 0 turns this rule off. An endpoint's "
        "`retry_policy.disable_after_failures` overrides it.",
    )
    # Failure warnings by email (`outbound/alerts.py`): the server, and who they are from.
    smtp_url: str | None = Field(
        None,
        description="Mail server for the failing-endpoint warnings, `smtp://user:password@host:"
        "port` (STARTTLS when the server offers it) or `smtps://...` (TLS from the start); "
        "unset, no email is sent. Endpoints with a `contact_email` get the warnings.",
    )
    smtp_from: str = Field(
        "webhooks@localhost",
        max_length=320,
        description="The From address of the warning emails.",
    )
    event_types: Literal["open", "strict"] = Field(
        "open",
        description="`open`: an event of a type in the catalogue (`/v1/event-types`) must "
        "match its schema, and other types are published as they are. `strict`: a type "
        "that is not in the catalogue (or is archived) is refused with 422 too.",
    )
    metrics_event_types: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Event types that `gateway_events_total` labels by name, per process; "
        "only events published by the operator (admin keys, inbound sources) add one, and "
        "the rest are counted as `other`.",
    )
    metrics_token: str | None = Field(
        None,
        description="When set, `GET /metrics` needs `Authorization: Bearer <token>` (401 "
        "otherwise); unset, it is open, as Prometheus scrapes it by default.",
    )
    console_session_hours: float = Field(
        12.0,
        gt=0,
        le=24 * 30,
        description="Hours a sign-in to the console lasts; sign-out, or revoking the key "
        "signed in with, ends it sooner.",
    )
    public_url: str | None = Field(
        None,
        description="The gateway's address as users reach it (`https://hooks.example.com`), "
        "for the absolute URLs of portal links and of sources' ingest paths; unset, they are "
        "built from the request.",
    )
    portal_frame_ancestors: str = Field(
        "'none'",
        description="The Content-Security-Policy `frame-ancestors` of tenant portal pages: "
        "the origins allowed to embed the portal in a frame (`https://app.example.com`, "
        "several separated by spaces or commas, `'self'` among them), or `'none'`. Console "
        "pages are never framed. With other origins and an https GATEWAY_PUBLIC_URL, the "
        "portal's session cookie is SameSite=None; Secure, which browsers send in a "
        "cross-site frame; otherwise SameSite=Lax.",
    )
    brand_name: str = Field(
        "Webhook gateway",
        max_length=100,
        description="The name shown in the console's and the portal's header.",
    )
    brand_logo_url: str | None = Field(
        None,
        max_length=2048,
        description="An https URL (or a path on the gateway) of a logo for the console's and "
        "portal's header.",
    )
    brand_accent: str = Field(
        "#2457c5",
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="The accent colour of the console and portal, as `#rrggbb`.",
    )
    log_level: str = Field(
        "INFO",
        description="Log level of every process: `DEBUG`, `INFO`, `WARNING` or `ERROR`.",
    )

    @field_validator(
        "retry_schedule", "allowed_networks", "old_secret_keys", "dns_servers", mode="before"
    )
    @classmethod
    def _parse_csv(cls, value: object, info: ValidationInfo) -> object:
        value = _split_csv(value)
        if info.field_name == "allowed_networks" and isinstance(value, list):
            # Host bits are allowed: 10.1.2.3/16 means 10.1.0.0/16.
            return [ipaddress.ip_network(str(v), strict=False) for v in value]
        return value

    @field_validator("egress_proxy")
    @classmethod
    def _check_egress_proxy(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "http" or not parts.hostname or not port or parts.path not in ("", "/"):
            raise ValueError("must be http://host:port (an HTTP CONNECT proxy)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold credentials")
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("retry delays must not be negative")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: str | None) -> str | None:
        if value is not None:
            parse_key(value)
        return value

    @field_validator("old_secret_keys")
    @classmethod
    def _check_old_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            parse_key(key)
        return value

    @field_validator("portal_frame_ancestors")
    @classmethod
    def _check_frame_ancestors(cls, value: str) -> str:
        # It goes into a header as is: anything but origins would let a setting add
        # directives (`; script-src *`) to the portal's policy.
        sources = value.replace(",", " ").split()
        origin = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
        if sources in (["'none'"], ["'self'"]) or (
            sources and all(s == "'self'" or origin.match(s) for s in sources)
        ):
            return " ".join(sources)
        raise ValueError(
            "must be 'none', or origins such as https://app.example.com (and 'self'), "
            "separated by spaces or commas"
        )

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _check_smtp_url(cls, value: object) -> object:
        if value in (None, ""):
            return None
        # The message never repeats the value: it may hold the mail password.
        if not isinstance(value, str) or urlsplit(value).scheme not in ("smtp", "smtps"):
            raise ValueError("must be smtp://user:password@host:port or smtps://...")
        try:
            if not urlsplit(value).hostname:
                raise ValueError
            urlsplit(value).port  # noqa: B018 (a bad port raises)
        except ValueError:
            raise ValueError("must be smtp://user:password@host:port or smtps://...") from None
        return value

    @field_validator("purge_interval_minutes")
    @classmethod
    def _check_purge_interval(cls, value: int) -> int:
        if value < 1 or 60 % value:
            raise ValueError(
                "must divide an hour evenly: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60"
            )
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_sentinel(value)  # its ValueError names the forms, never the value
        return value

    @field_validator("api_key", "secret_key", "metrics_token", mode="before")
    @classmethod
    def _empty_is_a_mistake(cls, value: object, info: ValidationInfo) -> object:
        # `export GATEWAY_SECRET_KEY=$(gateway secret-key generate)` with no `gateway` on
        # PATH sets an empty value and no error: taking it as unset would run without
        # the key the operator meant to give (or open /metrics), so say so instead.
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"GATEWAY_{(info.field_name or '').upper()} is set but empty (did the command "
                "that should have produced it fail?); unset it or give it a value"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except Exception:
            raise ValueError(
                "not a database URL; expected postgresql+asyncpg://user:password@host/db "
                "or sqlite+aiosqlite:///path/to/gateway.db"
            ) from None
        if f"{url.get_backend_name()}+{url.get_driver_name()}" not in _ASYNC_DRIVERS:
            raise ValueError(
                f"the gateway needs an async driver, not {value.split('://')[0]}://...: "
                "write postgresql+asyncpg://... or sqlite+aiosqlite:///..."
            )
        return value

    @model_validator(mode="after")
    def _check_job_timeout(self) -> Settings:
        # A job must outlive every attempt it makes, or arq re-runs it while the
        # first run is still sending: the known cause of overlapping duplicates.
        floor = self.delivery_timeout * 2 + 10
        if self.job_timeout is None:
            self.job_timeout = floor
        elif self.job_timeout < floor:
            raise ValueError(
                f"GATEWAY_JOB_TIMEOUT ({self.job_timeout:g}s) must be at least twice "
                f"GATEWAY_DELIVERY_TIMEOUT plus 10s ({floor:g}s)"
            )
        return self

    @property
    def embedded(self) -> bool:
        """No Redis: `gateway serve` delivers in-process."""
        return self.redis_url is None

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule) + 1

    @property
    def data_dir(self) -> Path:
        """Where embedded mode keeps its files: beside the SQLite database, else the cwd."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).expanduser().resolve().parent
        return Path.cwd()


@lru_cache
def get_settings() -> Settings:
    return Settings()
