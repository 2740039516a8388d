"""Prometheus metrics, shared by the API and the workers (prometheus-client).

Each process keeps its own registry; `GET /metrics` on the API and the worker's
`--metrics-port` serve it. With several uvicorn processes, set
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) to aggregate them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.settings import get_settings

EVENTS = Counter(
    "gateway_events_total",
    "Events stored, by origin (api, inbound) and type (bounded: see "
    "GATEWAY_METRICS_EVENT_TYPES; `other` beyond it)",
    ["origin", "type"],
)
INBOUND = Counter(
    "gateway_inbound_requests_total",
    "Requests to /in/{id}, by provider and outcome",
    ["provider", "outcome"],
)
VERIFICATION_FAILURES = Counter(
    "gateway_inbound_verification_failures_total",
    "Inbound requests refused, by provider and reason",
    ["provider", "reason"],
)
ATTEMPTS = Counter(
    "gateway_delivery_attempts_total",
    "Delivery attempts, by outcome and HTTP status class",
    ["outcome", "status_class"],
)
FINISHED = Counter(
    "gateway_deliveries_finished_total", "Deliveries that ended, by status", ["status"]
)
ATTEMPT_SECONDS = Histogram(
    "gateway_delivery_attempt_seconds",
    "Time from sending an attempt to its answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge(
    "gateway_delivery_attempts_in_flight",
    "Attempts being sent right now",
    multiprocess_mode="livesum",
)
FILTER_FAILURES = Counter(
    "gateway_filter_failures_total",
    "Events an endpoint's filter failed on (a missing key, the wrong type, a result that "
    "is not a bool), which it therefore did not receive, by endpoint id",
    ["endpoint"],
)
DEFERRED = Counter(
    "gateway_deliveries_deferred_total",
    "Deliveries put off without an attempt, by reason (rate_limit, breaker, busy)",
    ["reason"],
)
ENDPOINTS_DISABLED = Counter(
    "gateway_endpoints_disabled_total",
    "Endpoints the gateway disabled, by reason (gone, failing, failures)",
    ["reason"],
)
PENDING = Gauge(
    "gateway_deliveries_pending", "Deliveries not yet succeeded or failed", multiprocess_mode="max"
)
OLDEST_DUE = Gauge(
    "gateway_oldest_due_delivery_seconds",
    "Age of the oldest delivery that is due and not yet sent",
    multiprocess_mode="max",
)
DISABLED = Gauge(
    "gateway_disabled_endpoints", "Endpoints currently disabled", multiprocess_mode="max"
)


OTHER_TYPE = "other"


class _TypeLabels:
    """Event types as label values, at most `limit` of them per process.

    A label value is a series for as long as the process lives, and `/metrics` shows
    it to whoever scrapes it. So only events the operator published (an admin key,
    an inbound source, the gateway itself) may add a type; a tenant's events are
    counted under a type already known, else as `other`, and so are the operator's
    once `limit` types are known.
    """

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._limit: int | None = None

    def __call__(self, event_type: str, may_add: bool) -> str:
        if event_type in self._known:
            return event_type
        if self._limit is None:
            self._limit = get_settings().metrics_event_types
        if may_add and len(self._known) < self._limit:
            self._known.add(event_type)
            return event_type
        return OTHER_TYPE


event_type_label = _TypeLabels()


def status_class(status_code: int | None) -> str:
    return f"{status_code // 100}xx" if status_code is not None else "none"


def render() -> tuple[bytes, str]:
    """The exposition text of this process, or of all of them in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
