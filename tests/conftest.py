"""Fixtures: a real receiver, and the gateway as users run it, on both backends.

`gw` runs every test that takes it twice: on SQLite with in-process delivery
(`gateway serve` alone), and on PostgreSQL + Redis with a separate arq worker
(`gateway serve` + `gateway worker`). Both are real processes; tests talk to
them over HTTP and isolate by emptying the tables before each test.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from tests.support.dns import ScriptedDNS
from tests.support.gateway import API_KEY, BACKENDS, PG_MISSING, Gateway
from tests.support.helpers import archive_event_types
from tests.support.receiver import Receiver


def pytest_configure(config: pytest.Config) -> None:
    # The CLI's tables are read as a pipe would get them, whatever terminal (or
    # pytest-xdist worker) runs the tests: no width from the environment.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
    # A developer's .env (written by `make run`) must not reach the tests' settings;
    # the tests of the dotenv file name theirs.
    os.environ["GATEWAY_ENV_FILE"] = ""
    if PG_MISSING and os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(
            f"CI=true but {PG_MISSING}: the PostgreSQL + Redis half of the suite cannot run"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PG_MISSING:
        terminalreporter.write_line("")
        terminalreporter.write_line(
            f"!!! THE POSTGRESQL + REDIS HALF OF THE SUITE WAS SKIPPED: {PG_MISSING}. "
            "Set GATEWAY_TEST_DATABASE_URL and GATEWAY_TEST_REDIS_URL.",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dns() -> Iterator[ScriptedDNS]:
    server = ScriptedDNS()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dns: ScriptedDNS
) -> Iterator[Gateway]:
    instance = Gateway(request.param, tmp_path_factory.mktemp(request.param), dns)
    with instance.running():
        yield instance
    # Everything the suite did on this backend was logged: none of it may be secret.
    leaks = instance.leaked_secrets()
    assert not leaks, "secrets in the gateway's logs:\n" + "\n".join(leaks[:20])


@pytest.fixture
def gw(gateway: Gateway) -> Iterator[Gateway]:
    """The gateway, emptied for this test, with its processes running.

    Afterwards the tables that hold secrets are scanned: whatever the test did, no
    `whsec_` secret and no API key may be stored in plaintext.
    """
    if gateway.server is None or gateway.server.poll() is not None:
        gateway.start_server()
    if gateway.backend == "postgres" and not any(w.poll() is None for w in gateway.workers):
        gateway.start_worker()
    gateway.reset()
    yield gateway
    stored = "\n".join(
        repr(row)
        for rows in gateway.sql_each(
            *(f"SELECT * FROM {table}" for table in ("endpoint", "source", "api_key"))
        )
        for row in rows
    )
    assert "whsec_" not in stored and API_KEY not in stored, "a secret stored in plaintext"
    assert not re.search(r"gw_[A-Za-z0-9_\-]{20}", stored), "an API key stored in plaintext"


@pytest.fixture
def path() -> str:
    """A receiver path of this test's own."""
    return f"/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def forget_event_types(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that catalogued types on the shared gateway, archive them: its API
    process keeps what it read of a type for 2 s, which the next test's truncation of
    the tables does not reach. Asked for where the test uses `gw` only: requesting it
    here would run a test of a gateway of its own once more per shared backend."""
    gw = request.getfixturevalue("gw") if "gw" in request.fixturenames else None
    yield
    if gw is not None:
        archive_event_types(gw)
