"""OpenTelemetry traces, off unless the standard `OTEL_` variables ask for them.

One trace runs from a publish (or an inbound request) through fan-out to every
attempt of every delivery, across the API and the workers: the publish span's
context is stored with the event (`trace_parent`), and each attempt's span is
its child, however much later and in whichever process the attempt happens.

Turn it on with `OTEL_TRACES_EXPORTER=otlp` (and `OTEL_EXPORTER_OTLP_ENDPOINT`) or
`console`, with hookgate's `otel` extra installed. Without the SDK, or with
no exporter configured, the API's no-op tracer costs next to nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("gateway.tracing")

tracer = trace.get_tracer("gateway")
_propagator = TraceContextTextMapPropagator()
# Off, even the no-op tracer's context switching costs a few percent of a worker's
# CPU per attempt; `child_span` then skips it.
_exporting = False


def setup_tracing(service: str) -> None:
    """Install an exporting tracer provider when OTEL_TRACES_EXPORTER names one."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if exporter_name in ("", "none"):
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed: "
            "install hookgate's otel extra (in a checkout: pip install -e '.[otel]')"
        )
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    if exporter_name == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    global _exporting
    _exporting = True
    log.info("tracing on: %s exporter", exporter_name)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span in the current trace; nothing at all when no exporter is configured."""
    if not _exporting:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def current_parent() -> str | None:
    """The current span as a W3C `traceparent`, to be stored with what it started."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def child_span(name: str, parent: str | None, **attributes: Any) -> Iterator[trace.Span]:
    """A span under a stored `traceparent` (or a new trace when there is none)."""
    if not _exporting:
        yield trace.INVALID_SPAN
        return
    ctx = _propagator.extract({"traceparent": parent}) if parent else context.Context()
    with tracer.start_as_current_span(name, context=ctx, attributes=attributes) as span:
        yield span
