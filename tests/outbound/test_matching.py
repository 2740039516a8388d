"""Which endpoints an event goes to."""

from __future__ import annotations

import pytest

from gateway.outbound.matching import source_matches, type_matches


@pytest.mark.parametrize(
    "filters, event_type, expected",
    [
        (None, "a.b", True),
        ([], "a.b", True),
        (["*"], "a.b", True),
        (["a.b"], "a.b", True),
        (["a.b"], "a.bc", False),
        (["a.*"], "a.b", True),
        (["a.*"], "a.b.c", True),
        (["a.*"], "ab.c", False),
        (["a.*"], "a", False),
        (["x.y", "invoice.*"], "invoice.paid", True),
    ],
)
def test_type_filters(filters: list[str] | None, event_type: str, expected: bool) -> None:
    assert type_matches(filters, event_type) is expected


def test_source_filters() -> None:
    assert source_matches(None, None)
    assert source_matches(None, "src_1")
    assert not source_matches(["src_1"], None)
    assert source_matches(["src_1"], "src_1")
    assert not source_matches(["src_1"], "src_2")
    # [] is "published events only": nothing from a source, everything published.
    assert source_matches([], None)
    assert not source_matches([], "src_1")
