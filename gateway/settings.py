"""The one settings object: every knob is a `GATEWAY_` environment variable, checked at start."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from gateway.crypto import parse_key

DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of the API, the workers and the CLI (see docs and api.md)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./gateway.db"
    redis_url: str | None = None
    api_key: str | None = None
    # Encrypts secrets at rest (32 bytes, URL-safe base64); old keys still open values
    # sealed under them until `gateway secret-key rotate` has re-sealed everything.
    secret_key: str | None = None
    old_secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_networks: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = (
        Field(default_factory=list)
    )
    # Name servers (`host` or `host:port`) to resolve endpoint hosts with; empty: the system's.
    dns_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [float(s) for s in DEFAULT_RETRY_SCHEDULE.split(",")]
    )
    delivery_timeout: float = Field(15.0, gt=0, le=300)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Requests per second, per API key and per inbound source (each can set its own).
    api_rate_limit: int = Field(1000, ge=1)
    inbound_rate_limit: int = Field(1000, ge=1)

    # Queue and worker tuning: arq's defaults cap a worker near 200 jobs/s (poll delay).
    queue_name: str = "gateway:queue"
    worker_max_jobs: int = Field(200, ge=1)
    worker_poll_delay: float = Field(0.02, gt=0, le=5)
    job_timeout: float | None = Field(None, gt=0)
    # In-flight HTTP requests per process, and per endpoint host, so one slow host
    # cannot take every connection.
    delivery_concurrency: int = Field(500, ge=1)
    connections_per_host: int = Field(50, ge=1)
    # Sweeper: how often it runs and how overdue a delivery must be before it is
    # re-dispatched (its own job had that long to run).
    sweep_interval: float = Field(10.0, gt=0)
    sweep_grace: float = Field(30.0, ge=0)
    sweep_batch: int = Field(500, ge=1)
    # How long the previous secret keeps signing after a rotation.
    secret_rotation_overlap_hours: float = Field(24.0, ge=0)
    # Events (with their deliveries and attempts) older than this are purged.
    retention_days: float = Field(30.0, gt=0)
    # Endpoint health: failures in a row that open the breaker, its longest open spell,
    # and how long an endpoint may do nothing but fail before it is disabled.
    breaker_threshold: int = Field(5, ge=1)
    breaker_base_open: float = Field(5.0, gt=0)
    breaker_max_open: float = Field(300.0, gt=0)
    disable_after: float = Field(5 * 24 * 3600.0, gt=0)
    log_level: str = "INFO"

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [ipaddress.ip_network(str(v), strict=False) for v in value]
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("retry delays must not be negative")
        return value

    @field_validator("old_secret_keys", "dns_servers", mode="before")
    @classmethod
    def _parse_old_keys(cls, value: object) -> object:
        return _split_csv(value)

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

    @field_validator("redis_url", "api_key", "secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

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
