"""Traces: one trace from publish through fan-out to each attempt, across API and worker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, Gateway
from tests.support.helpers import deliveries_of, make_endpoint, publish, wait_delivery
from tests.support.receiver import Receiver, wait_until

_SPAN = re.compile(r"^\{\n.*?^\}", re.S | re.M)


@pytest.fixture
def traced(tmp_path: Path, dns: ScriptedDNS) -> Iterator[Gateway]:
    """A gateway of its own, API and worker, exporting spans to their output."""
    if PG_MISSING:
        pytest.skip(PG_MISSING)
    gateway = Gateway("postgres", tmp_path, dns)
    gateway.env["OTEL_TRACES_EXPORTER"] = "console"
    with gateway.running():
        yield gateway


def _spans(gw: Gateway) -> list[dict[str, object]]:
    spans = []
    for log in gw.workdir.glob("*.log"):
        for block in _SPAN.findall(log.read_text(errors="replace")):
            try:
                span = json.loads(block)
            except ValueError:
                continue
            if isinstance(span, dict) and "context" in span:
                span["process"] = log.stem
                spans.append(span)
    return spans


def test_one_trace_from_publish_to_each_attempt(
    traced: Gateway, receiver: Receiver, path: str
) -> None:
    gw = traced
    make_endpoint(gw, receiver.url(f"{path}/a"))
    make_endpoint(gw, receiver.url(f"{path}/b"))
    event = publish(gw, "traced.event")
    for delivery in deliveries_of(gw, event["id"]):
        wait_delivery(gw, delivery["id"], "succeeded")

    def found() -> tuple[dict, list[dict]] | None:  # type: ignore[type-arg]
        spans = _spans(gw)
        publishes = [s for s in spans if s["name"] == "webhook.publish"]
        attempts = [
            s
            for s in spans
            if s["name"] == "webhook.attempt" and s["attributes"]["gateway.event_id"] == event["id"]
        ]  # type: ignore[index]
        return (publishes[-1], attempts) if publishes and len(attempts) == 2 else None

    publish_span, attempts = wait_until(found, 15, "the spans")
    trace_id = publish_span["context"]["trace_id"]
    assert publish_span["process"] == "server"
    for attempt in attempts:
        assert attempt["process"].startswith("worker")  # another process...
        assert attempt["context"]["trace_id"] == trace_id  # ...the same trace
        assert attempt["parent_id"] == publish_span["context"]["span_id"]
        assert attempt["attributes"]["http.response.status_code"] == 200
