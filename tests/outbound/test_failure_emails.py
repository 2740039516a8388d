"""Failure warnings by email, on both backends: a gateway with GATEWAY_SMTP_URL pointing
at a local SMTP server (aiosmtpd) that the tests start; at most one email an hour per
endpoint; and a mail server that hangs delays the mail, never a delivery."""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.dns import ScriptedDNS
from tests.support.gateway import BACKENDS, Gateway, free_port, own_gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, Reply, wait_until


class Inbox:
    """aiosmtpd's handler: keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


class BlackHole:
    """A server that accepts connections and never says a word: a hung mail server."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def open_connections(self) -> int:
        """Connections the client has not closed (it would, on giving up)."""
        still = 0
        for conn in self.held:
            conn.setblocking(False)
            try:
                still += conn.recv(1) != b""
            except BlockingIOError:
                still += 1
            except OSError:
                pass
        return still

    def close(self) -> None:
        # Shut down first: a close alone leaves the port bound while accept() waits.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


class Mail:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module")
def mail() -> Iterator[Mail]:
    server = Mail()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def mgw(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dns: ScriptedDNS,
    mail: Mail,
) -> Iterator[Gateway]:
    workdir: Path = tmp_path_factory.mktemp(f"mail-{request.param}")
    with own_gateway(
        request.param,
        workdir,
        dns,
        GATEWAY_SMTP_URL=f"smtp://127.0.0.1:{mail.port}",
        GATEWAY_SMTP_FROM="gateway@example.com",
    ) as gateway:
        yield gateway


@pytest.fixture
def gw(mgw: Gateway, mail: Mail) -> Gateway:
    mgw.reset()
    mail.inbox.messages.clear()
    return mgw


def _fail_once(gw: Gateway, endpoint_id: str, i: int) -> None:
    event = publish(gw, "order.created", {"i": i})
    [delivery] = [d for d in deliveries_of(gw, event["id"]) if d["endpoint_id"] == endpoint_id]
    wait_delivery(gw, delivery["id"], "failed")


def _log_count(gw: Gateway, text: str) -> int:
    return sum(log.read_text(errors="replace").count(text) for log in gw.workdir.glob("*.log"))


def _hours_ago(gw: Gateway, hours: int) -> str:
    if gw.backend == "sqlite":
        return f"datetime('now', '-{hours} hours')"
    return f"now() AT TIME ZONE 'utc' - interval '{hours} hours'"


def test_warnings_are_mailed_at_most_once_an_hour(
    gw: Gateway, mail: Mail, receiver: Receiver, path: str
) -> None:
    receiver.set(f"{path}/down", Reply(422, body=b'{"error":"unknown order"}'))
    down = make_endpoint(
        gw,
        receiver.url(f"{path}/down?token=t0ps3cret"),
        event_types=["order.*"],
        contact_email="oncall@example.com",
        retry_policy={"schedule": [], "disable_after_failures": 4},
    )
    make_endpoint(gw, receiver.url(f"{path}/ops"), event_types=["endpoint.*"])
    skipped_before = _log_count(gw, "warning email skipped")
    for i in range(4):  # 50% at two, 70% at three (75%), disabled at four
        _fail_once(gw, down["id"], i)
    notices = receiver.wait_for(f"{path}/ops", 3)
    assert sorted(json.loads(n.body)["type"] for n in notices) == [
        "endpoint.disabled",
        "endpoint.failing",
        "endpoint.failing",
    ]
    # The first warning is mailed; the next two, within the hour, are not.
    wait_until(lambda: mail.inbox.messages, 15, "the first warning email")
    wait_until(
        lambda: _log_count(gw, "warning email skipped") - skipped_before >= 2,
        15,
        "the later warnings' emails skipped",
    )
    [message] = mail.inbox.messages
    assert message["X-Envelope-To"] == "oncall@example.com"
    assert message["From"] == "gateway@example.com"
    assert "50%" in message["Subject"]
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert down["id"] in text and receiver.url(f"{path}/down") in text
    assert "HTTP 422" in text and "What to do" in text
    assert "t0ps3cret" not in text


def test_recovery_is_mailed_once_the_hour_has_passed(
    gw: Gateway, mail: Mail, receiver: Receiver, path: str
) -> None:
    receiver.set(path, Reply(500))
    flaky = make_endpoint(
        gw,
        receiver.url(path),
        event_types=["order.*"],
        contact_email="oncall@example.com",
        retry_policy={"schedule": [], "disable_after_failures": 4},
    )
    for i in range(2):
        _fail_once(gw, flaky["id"], i)
    wait_until(lambda: mail.inbox.messages, 15, "the 50% warning email")
    gw.sql(
        f"UPDATE endpoint SET warning_emailed_at = {_hours_ago(gw, 2)} WHERE id = '{flaky['id']}'"
    )
    receiver.set(path, Reply(200))
    publish(gw, "order.created", {"i": 2})
    wait_until(lambda: len(mail.inbox.messages) == 2, 15, "the recovery email")
    assert "recovered" in mail.inbox.messages[1]["Subject"]


def test_a_hung_mail_server_delays_no_delivery(
    gw: Gateway, mail: Mail, receiver: Receiver, path: str
) -> None:
    mail.stop()
    hole = BlackHole(mail.port)
    try:
        receiver.set(f"{path}/down", Reply(422))
        down = make_endpoint(
            gw,
            receiver.url(f"{path}/down"),
            event_types=["order.*"],
            contact_email="oncall@example.com",
            retry_policy={"schedule": [], "disable_after_failures": 3},
        )
        up = make_endpoint(gw, receiver.url(f"{path}/up"), event_types=["order.*"])
        make_endpoint(gw, receiver.url(f"{path}/ops"), event_types=["endpoint.*"])
        for i in range(2):  # 66%: the 50% warning, whose email hangs
            _fail_once(gw, down["id"], i)
        wait_until(lambda: hole.open_connections(), 15, "the warning email's connection")
        # Meanwhile deliveries go on: the healthy endpoint gets everything, the failing
        # one is disabled and announced, all while the email still waits for a greeting.
        events = [publish(gw, "order.created", {"i": i}) for i in range(2, 12)]
        receiver.wait_for(f"{path}/up", 12)
        for event in events:
            [delivery] = [d for d in deliveries_of(gw, event["id"]) if d["endpoint_id"] == up["id"]]
            wait_delivery(gw, delivery["id"], "succeeded")
        wait_until(
            lambda: gw.api.get(f"/v1/endpoints/{down['id']}").json()["disabled"],
            15,
            "the endpoint disabled",
        )
        receiver.wait_for(f"{path}/ops", 2)
        assert hole.open_connections() >= 1, "the email gave up: the test proves nothing"
        assert mail.inbox.messages == []
    finally:
        hole.close()
        mail.start()


def test_a_mail_server_that_was_down_gets_the_warning_later(
    gw: Gateway, mail: Mail, receiver: Receiver, path: str
) -> None:
    mail.stop()  # refused: the warning's email fails at once, and frees its hour
    try:
        receiver.set(path, Reply(422))
        down = make_endpoint(
            gw,
            receiver.url(path),
            event_types=["order.*"],
            contact_email="oncall@example.com",
            retry_policy={"schedule": [], "disable_after_failures": 4},
        )
        failed_before = _log_count(gw, "warning email not sent")
        for i in range(2):
            _fail_once(gw, down["id"], i)
        wait_until(
            lambda: _log_count(gw, "warning email not sent") > failed_before,
            15,
            "the email to fail",
        )
    finally:
        mail.start()
    # The sweeper (every second here) sends it once the server is back.
    wait_until(lambda: mail.inbox.messages, 15, "the warning email, sent late")
    [message] = mail.inbox.messages
    assert "50%" in message["Subject"]
