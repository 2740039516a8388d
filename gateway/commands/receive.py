"""`gateway receive`: a webhook endpoint on this machine, to watch deliveries arrive.

It prints each request the gateway sends, checks its Standard Webhooks signature
with the code of the inbound `standard` provider (so there is one verifier, not
two), and can fail on purpose, so that a failure and its retry can be seen without
writing a receiver first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonFlag,
    fail,
    note,
    stop_on_signals,
)

if TYPE_CHECKING:
    from aiohttp import web

# Read by this command only, not a setting: the secret stays out of shell history.
SECRET_ENV = "GATEWAY_RECEIVE_SECRET"
VALID, INVALID, NOT_CHECKED = "valid", "invalid", "not_checked"
# Well above the gateway's largest event body, so that nothing it sends is refused here.
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass
class Delivery:
    """One request as received and answered; `--json` prints these fields."""

    received_at: str
    path: str
    webhook_id: str | None
    event_type: str | None
    # How many requests with this webhook-id this receiver has had: the gateway does
    # not number its attempts on the wire, and every attempt carries the same id.
    attempt: int
    signature: str  # valid, invalid or not_checked
    reason: str | None  # why the signature is invalid
    status: int  # what this receiver answered
    body: Any  # the parsed JSON (or form fields), else the text as received


@dataclass
class Tally:
    received: int = 0
    valid: int = 0
    invalid: int = 0
    failed: int = 0  # answered --status on purpose
    seen: Counter[str] = field(default_factory=Counter)

    def summary(self, checked: bool) -> str:
        signatures = (
            f"{self.valid} valid, {self.invalid} invalid" if checked else "signatures not checked"
        )
        return f"{self.received} received ({signatures}), {self.failed} failed on purpose (--fail)"


def receive(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback unless you mean otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).", min=0)] = 9000,
    path: Annotated[str, typer.Option(help="Path that takes the POSTs.")] = "/webhooks",
    secret: Annotated[
        str | None,
        typer.Option(
            envvar=SECRET_ENV,
            help="The endpoint's signing secret (whsec_...): check every signature and "
            f"answer 401 when it does not match. Better set {SECRET_ENV}, which keeps it "
            "out of your shell history. Without it, signatures are not checked.",
            show_default=False,
        ),
    ] = None,
    fail_first: Annotated[
        int,
        typer.Option(
            "--fail",
            min=0,
            help="Answer --status to the first N requests of each webhook-id, then 200: "
            "a failure, and the gateway's retry.",
        ),
    ] = 0,
    status: Annotated[int, typer.Option(min=100, max=599, help="What --fail answers.")] = 503,
    as_json: JsonFlag = False,
) -> None:
    """Receive deliveries here: print each one and check its signature.

    A local endpoint to try the gateway with: point an endpoint at the URL
    it prints, publish, and watch, one line per request (--json: one JSON
    object per line). The gateway delivers to loopback only when it allows
    it: GATEWAY_ALLOWED_NETWORKS=127.0.0.1/32. Ctrl-C stops with a summary.
    """
    import asyncio

    from gateway.outbound.signer import secret_key

    if secret is not None:
        try:
            secret_key(secret)  # what an endpoint's secret must be, so a typo shows now
        except ValueError as exc:
            fail(f"{_secret_source(secret)}: {exc}", EXIT_USAGE)
    if not path.startswith("/"):
        path = "/" + path
    tally = Tally()
    try:
        asyncio.run(_serve(host, port, path, secret, fail_first, status, as_json, tally))
    except KeyboardInterrupt:  # where the loop could not take over SIGINT
        pass
    note(tally.summary(secret is not None))


async def _serve(
    host: str,
    port: int,
    path: str,
    secret: str | None,
    fail_first: int,
    fail_status: int,
    as_json: bool,
    tally: Tally,
) -> None:
    import os

    from aiohttp import web
    from rich.markup import escape

    handler = _Handler(path, secret, fail_first, fail_status, as_json, tally)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(path, handler.delivery)
    app.router.add_route("*", "/{tail:.*}", handler.elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            fail(f"cannot listen on {host}:{port}: {reason}", EXIT_FAILED)
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}{path}"
        checking = "not checking signatures (no --secret)"
        if secret:
            checking = f"checking signatures with the secret of {_secret_source(secret)}"
        note(f"Receiving on [bold]{escape(url)}[/bold], {checking}; Ctrl-C to stop.")
        note(
            f"[dim]Point an endpoint at it: gateway endpoints create {escape(url)} "
            "(with GATEWAY_ALLOWED_NETWORKS=127.0.0.1/32 where the gateway runs).[/dim]"
        )
        stop = stop_on_signals()
        await stop.wait()
    finally:
        await runner.cleanup()


def _secret_source(secret: str) -> str:
    """Where the secret came from, to tell a stale variable from what was just typed."""
    import os

    return SECRET_ENV if os.environ.get(SECRET_ENV) == secret else "--secret"


class _Handler:
    def __init__(
        self,
        path: str,
        secret: str | None,
        fail_first: int,
        fail_status: int,
        as_json: bool,
        tally: Tally,
    ) -> None:
        from gateway.inbound.verifiers import SourceConfig, StandardVerifier

        self.path = path
        self.config = SourceConfig(secret) if secret is not None else None
        self.verifier = StandardVerifier()
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.as_json = as_json
        self.tally = tally

    async def delivery(self, request: web.Request) -> web.Response:
        import time

        from aiohttp import web

        from gateway.inbound.verifiers import VerificationFailed, parse_payload
        from gateway.timeutil import rfc3339, utcnow

        received_at = rfc3339(utcnow()) or ""
        body = await request.read()
        headers = request.headers
        webhook_id = headers.get("webhook-id")
        tally = self.tally
        tally.received += 1
        tally.seen[webhook_id or ""] += 1
        attempt = tally.seen[webhook_id or ""]
        verdict, reason = NOT_CHECKED, None
        if self.config is not None:
            try:
                self.verifier.verify(self.config, headers, body, time.time())
                verdict = VALID
                tally.valid += 1
            except VerificationFailed as exc:
                verdict, reason = INVALID, str(exc)
                tally.invalid += 1
        answer: dict[str, object]
        if verdict == INVALID:
            status, answer = 401, {"error": f"signature: {reason}"}
        elif attempt <= self.fail_first:
            tally.failed += 1
            status = self.fail_status
            answer = {
                "error": f"failing on purpose: request {attempt} of this webhook-id, "
                f"gateway receive --fail {self.fail_first}"
            }
        else:
            status, answer = 200, {"ok": True}
        payload = parse_payload(headers, body)
        event_type = payload.get("type") if isinstance(payload, dict) else None
        shown = Delivery(
            received_at=received_at,
            path=request.path,
            webhook_id=webhook_id,
            event_type=event_type if isinstance(event_type, str) else None,
            attempt=attempt,
            signature=verdict,
            reason=reason,
            status=status,
            body=payload if payload is not None else body.decode(errors="replace"),
        )
        if self.as_json:
            _print_json(shown)
        else:
            _print_line(shown)
        return web.json_response(answer, status=status)

    async def elsewhere(self, request: web.Request) -> web.Response:
        from aiohttp import web
        from rich.markup import escape

        if request.path == self.path:
            where = f"{escape(request.method)} {escape(request.path)}"
            note(f"[yellow]{where}[/]: answered 405, POST only")
            return web.json_response({"error": "POST only"}, status=405)
        note(
            f"[yellow]{escape(request.method)} {escape(request.path)}[/]: answered 404, "
            f"deliveries go to {escape(self.path)}"
        )
        return web.json_response({"error": f"not found; POST to {self.path}"}, status=404)


def _print_json(delivery: Delivery) -> None:
    import json
    import sys
    from dataclasses import asdict

    sys.stdout.write(json.dumps(asdict(delivery), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _print_line(delivery: Delivery) -> None:
    import json

    from rich.text import Text

    from gateway.commands.common import out

    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(delivery.received_at[11:19], "dim")  # the time of day, UTC
    line.append(f" {delivery.webhook_id or '-'} ", "cyan")
    line.append(delivery.event_type or "-", "bold")
    line.append(f" #{delivery.attempt} ")
    if delivery.signature == VALID:
        line.append("valid", "green")
    elif delivery.signature == INVALID:
        line.append(f"INVALID ({delivery.reason})", "bold red")
    else:
        line.append("not checked", "dim")
    line.append(f" → {delivery.status} ", "green" if delivery.status < 300 else "red")
    body = delivery.body
    if isinstance(body, str):
        line.append(body.replace("\n", " "), "dim")
    else:
        line.append(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
    line.truncate(out.width, overflow="ellipsis")
    out.print(line, soft_wrap=False)
