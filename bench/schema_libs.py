"""Which JSON Schema library validates event data: `jsonschema-rs` against `fastjsonschema`.

    python -m bench.schema_libs

Times, in one process, compiling the 20-field schema of `bench/w2_schema.py` and
validating one valid and one invalid event's data with each library (the median of
several rounds), and says what each reports about the invalid one. fastjsonschema is
not a dependency of the gateway: it is measured only when installed
(`pip install fastjsonschema`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs

from bench.timing import per_call
from bench.w2_schema import SCHEMA, event_data

VALIDATIONS = 20_000
COMPILES = 200


def _bad(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "amount": "twelve"}


def _rust() -> dict[str, Any]:
    def compile_() -> jsonschema_rs.Validator:
        return jsonschema_rs.Draft202012Validator(SCHEMA, offline=True)

    validator = compile_()
    good, bad = event_data(1), _bad(event_data(1))

    def check_bad() -> object:
        return next(validator.iter_errors(bad), None)

    error = check_bad()
    assert validator.is_valid(good) and error is not None
    return {
        "compile": per_call(compile_, COMPILES),
        "valid": per_call(lambda: validator.is_valid(good), VALIDATIONS),
        "invalid": per_call(check_bad, VALIDATIONS),
        "reports": f"path {list(error.instance_path)}, rule {error.schema_path[-1]!r}: "  # type: ignore[attr-defined]
        f"{error.message}",  # type: ignore[attr-defined]
    }


def _fast() -> dict[str, Any] | None:
    try:
        import fastjsonschema  # type: ignore[import-not-found]
    except ImportError:
        return None
    # It knows drafts 4, 6 and 7 only: the schema is read as draft 7.
    schema = {k: v for k, v in SCHEMA.items() if k != "$schema"}

    def compile_() -> Callable[[Any], Any]:
        return fastjsonschema.compile(schema)  # type: ignore[no-any-return]

    validate = compile_()
    good, bad = event_data(1), _bad(event_data(1))

    def check_bad() -> object:
        try:
            validate(bad)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc
        return None

    error = check_bad()
    validate(good)
    assert error is not None
    return {
        "compile": per_call(compile_, COMPILES // 10),
        "valid": per_call(lambda: validate(good), VALIDATIONS),
        "invalid": per_call(check_bad, VALIDATIONS),
        "reports": f"path {error.path!r}, rule {error.rule!r}: {error.message}",  # type: ignore[attr-defined]
    }


def main() -> None:
    results = {"jsonschema-rs": _rust(), "fastjsonschema": _fast()}
    print(f"{'library':16} {'compile':>10} {'valid':>9} {'invalid':>9}  what it reports")
    for name, r in results.items():
        if r is None:
            print(f"{name:16} not installed")
            continue
        print(
            f"{name:16} {r['compile'] * 1e3:8.2f}ms {r['valid'] * 1e6:7.2f}µs "
            f"{r['invalid'] * 1e6:7.2f}µs  {r['reports']}"
        )


if __name__ == "__main__":
    main()
