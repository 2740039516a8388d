"""Which CEL library evaluates endpoint filters: `common-expression-language` (Rust, import
`cel`) against `cel-python` (pure Python, import `celpy`).

    python -m bench.filter_libs

Times, in one process, compiling the filter of `bench/w2_filters.py`, converting one
event's 20-field data for it, and evaluating it (the median of several rounds); then
what publishing spends per event on 100 endpoints of its type, with the gateway's own
code (`gateway/outbound/filters.py`): one conversion of the keys of `data` the
filters read and 100 evaluations, against 100 type filters. cel-python is not a
dependency of the gateway: it is measured only when installed (`pip install cel-python`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cel

from bench.timing import per_call
from bench.w2_filters import ENDPOINTS, event_data, filter_of
from gateway.outbound import filters
from gateway.outbound.matching import type_matches

CALLS = 5_000
EXPRESSION = filter_of(0)
EVENT_TYPE = "order.paid"


def _variables(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": EVENT_TYPE, "data": data, "tenant_id": None, "source_id": None, "headers": {}}


def _parse_error(compile_: Callable[[str], object]) -> str:
    try:
        compile_("data.amount >")
    except Exception as exc:
        return " ".join(str(exc).split())[:110]
    return "no error"


def _rust() -> dict[str, Any]:
    data = event_data(1)
    program = cel.compile(EXPRESSION)
    context = cel.Context(_variables(data))
    assert program.execute(context) is True
    return {
        "compile": per_call(lambda: cel.compile(EXPRESSION), CALLS // 5),
        "convert": per_call(lambda: cel.Context(_variables(data)), CALLS),
        "evaluate": per_call(lambda: program.execute(context), CALLS),
        "reports": _parse_error(cel.compile),
    }


def _python() -> dict[str, Any] | None:
    try:
        import celpy  # type: ignore[import-not-found]
    except ImportError:
        return None
    env = celpy.Environment()
    data = event_data(1)
    program = env.program(env.compile(EXPRESSION))

    def convert() -> dict[str, Any]:
        return {k: celpy.json_to_cel(v) for k, v in _variables(data).items()}

    activation = convert()
    assert bool(program.evaluate(activation)) is True
    return {
        "compile": per_call(lambda: env.compile(EXPRESSION), CALLS // 50),
        "convert": per_call(convert, CALLS // 10),
        "evaluate": per_call(lambda: program.evaluate(activation), CALLS // 10),
        "reports": _parse_error(env.compile),
    }


def _publish_path() -> tuple[float, float]:
    """Per event, on 100 endpoints of its type: the gateway's filters, and type filters."""
    data = event_data(1)
    expressions = [filter_of(k) for k in range(ENDPOINTS)]
    types = [[EVENT_TYPE if k == 0 else f"{EVENT_TYPE}.other{k}"] for k in range(ENDPOINTS)]

    def with_filters() -> int:
        verdicts = filters.verdicts(frozenset(expressions), EVENT_TYPE, data, None, None, None)
        return sum(matches for matches, _error in verdicts.values())

    def with_types() -> int:
        return sum(type_matches(t, EVENT_TYPE) for t in types)

    assert with_filters() == 1 and with_types() == 1
    return per_call(with_filters, CALLS // 10), per_call(with_types, CALLS // 10)


def main() -> None:
    results = {"common-expression-language": _rust(), "cel-python": _python()}
    print(f"{'library':27} {'compile':>9} {'convert':>9} {'evaluate':>9}  a parse error reads")
    for name, r in results.items():
        if r is None:
            print(f"{name:27} not installed")
            continue
        print(
            f"{name:27} {r['compile'] * 1e6:7.1f}µs {r['convert'] * 1e6:7.1f}µs "
            f"{r['evaluate'] * 1e6:7.2f}µs  {r['reports']}"
        )
    filtered, typed = _publish_path()
    print(
        f"per event, {ENDPOINTS} endpoints of its type: filters {filtered * 1e6:.1f}µs "
        f"(one conversion, {ENDPOINTS} evaluations), type filters only {typed * 1e6:.1f}µs"
    )


if __name__ == "__main__":
    main()
