"""Which endpoints an event goes to: the tenant rule, event-type filters and the origin rule.

The tenant rule: an endpoint with a `tenant_id` receives only events of that
tenant, and an event without a tenant (published without `tenant_id`, or
received through a source, which belongs to the operator) reaches only the
endpoints without one. The one exception is an event that names its endpoints by
id under an admin key. Publishing applies the rule when it reads the candidate
endpoints (`fanout.py`); what is left to match here is an endpoint's filters.
"""

from __future__ import annotations

from typing import Any, Protocol


class Subscription(Protocol):
    """What matching reads of an endpoint (an `Endpoint`, or a row of those columns)."""

    @property
    def event_types(self) -> list[str] | None: ...
    @property
    def source_ids(self) -> list[str] | None: ...
    @property
    def disabled(self) -> bool: ...


def type_matches(filters: list[str] | None, event_type: str) -> bool:
    """`None`, `[]` or `"*"` match everything; `"invoice.*"` matches `invoice.paid`."""
    if not filters:
        return True
    for pattern in filters:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def source_matches(source_ids: list[str] | None, source_id: str | None) -> bool:
    """The origin rule: `None` takes every event (published, and received from any
    source), `[]` only published events, `[ids]` only what those sources receive."""
    if source_ids is None:
        return True
    if source_id is None:
        return not source_ids
    return source_id in source_ids


def endpoint_matches(endpoint: Subscription | Any, event_type: str, source_id: str | None) -> bool:
    return (
        not endpoint.disabled
        and type_matches(endpoint.event_types, event_type)
        and source_matches(endpoint.source_ids, source_id)
    )
