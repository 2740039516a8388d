"""Endpoint filters: a Common Expression Language (CEL) expression over the event.

An endpoint with a `filter` receives an event only when the expression is true for
it. The expression sees `type`, `data`, `previous_data` (an update event's data before
the change; `{}` when it has none), `tenant_id`, `source_id` and `headers` (the
request headers of an event received through a source; `{}` for a published one).
JSON numbers are CEL `int` (no fraction) or `double`; comparisons between the two
work as numbers do (`data.amount > 1000` is true for 1500 and for 1500.5), while
arithmetic needs them converted (`double(data.amount) * 1.2`).

Evaluated with the Rust implementation (`common-expression-language`, imported as
`cel`): about 50 µs to compile and under 1 µs to evaluate a typical filter once the
event is converted, against about 600 µs for each with the pure-Python `cel-python`
(`python -m bench.filter_libs`). Programs are compiled once per process (a bounded
cache keyed by the text); an event is converted once for all its endpoints.

The library holds the GIL while it evaluates, and its `map` and `filter` macros,
and a list read again for each element inside a macro, cost the square of the
list's length (10,000 elements: 2.6 s). So `check` refuses them when a filter is
saved, and every filter's cost stays linear in the event's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cel

MAX_LENGTH = 2000
# Comprehension macros in one filter, each a pass over a list.
MAX_MACROS = 10
PROGRAMS_CACHED = 4096
VARIABLES = ("type", "data", "previous_data", "tenant_id", "source_id", "headers")

_LINEAR_MACROS = {"all", "exists", "exists_one"}
_QUADRATIC_MACROS = {"map", "filter"}
# Names that are not variables: literals, operators and type names.
_NOT_VARIABLES = {
    "true",
    "false",
    "null",
    "in",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
}
_PARSE_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (?:Syntax error: )?([^\n]*)")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''
        |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d*\.?\d+(?:[eE][+-]?\d+)?[uU]?)
  | (?P<name>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<punct>.)
    """,
    re.VERBOSE,
)


class FilterError(ValueError):
    """A filter that cannot be saved: the message says where (line and column) and why."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Filter:
    """A compiled filter, and the keys of `data` it reads (None: it reads `data` whole)."""

    program: cel.Program
    data_keys: frozenset[str] | None
    # Whether it reads `previous_data`: converted only for the filters that do.
    reads_previous: bool = False


Verdict = tuple[bool, str | None]  # matches, and the error when the filter failed on it


def check(expression: str) -> str:
    """The expression if it can be saved as a filter; `FilterError` otherwise."""
    compiled(expression)
    return expression


@lru_cache(maxsize=PROGRAMS_CACHED)
def compiled(expression: str) -> Filter:
    """A filter, compiled once per process (errors are not cached)."""
    if len(expression) > MAX_LENGTH:
        raise FilterError(f"a filter has at most {MAX_LENGTH} characters")
    if not expression.strip():
        raise FilterError("a filter cannot be empty: use null for none")
    try:
        program = cel.compile(expression)
    except Exception as exc:  # the library raises ValueError; anything else is as bad
        raise FilterError(_parse_message(str(exc))) from None
    tokens = [
        _Token(m.lastgroup or "punct", m.group(), m.start())
        for m in _TOKEN.finditer(expression)
        if m.lastgroup != "space"
    ]
    macros = _check_macros(expression, tokens, 0, len(tokens), None)
    if macros > MAX_MACROS:
        raise FilterError(f"a filter uses at most {MAX_MACROS} of all(), exists(), exists_one()")
    reads_previous = any(
        t.kind == "name" and t.text == "previous_data" and (i == 0 or tokens[i - 1].text != ".")
        for i, t in enumerate(tokens)
    )
    return Filter(program, _data_keys(tokens), reads_previous)


def verdicts(
    expressions: frozenset[str],
    event_type: str,
    data: dict[str, Any],
    tenant_id: str | None,
    source_id: str | None,
    headers: dict[str, str] | None,
    previous_data: dict[str, Any] | None = None,
) -> dict[str, Verdict]:
    """Each filter's verdict on one event.

    A filter that fails (a missing key, an operation on the wrong types, a result
    that is not a bool) does not match: its error says what went wrong. The event's
    variables are converted once for all the filters, and of `data` only the keys
    they read: the library takes 1 to 3 µs per key to convert.
    """
    plan = _plan(expressions)
    found = dict(plan.refused)
    if not plan.programs:
        return found
    if plan.data_keys is not None:
        data = {k: data[k] for k in plan.data_keys if k in data}
    try:
        context = cel.Context(
            {
                "type": event_type,
                "data": data,
                "tenant_id": tenant_id,
                "source_id": source_id,
                "headers": headers or {},
                # Converted only when a filter reads it: 1 to 3 µs a key.
                "previous_data": (previous_data or {}) if plan.reads_previous else {},
            }
        )
    except Exception as exc:  # JSON values convert; this is for anything it would refuse
        failed = (False, f"the event could not be read: {exc}")
        return found | {expression: failed for expression, _ in plan.programs}
    # The publish path's loop: about 1.5 µs per filter, most of it the library's.
    for expression, program in plan.programs:
        try:
            result = program.execute(context)
        except Exception as exc:  # evaluation errors come as several Python types
            found[expression] = (False, _failure(exc))
            continue
        if result is True:
            found[expression] = _MATCHES
        elif result is False:
            found[expression] = _DOES_NOT_MATCH
        else:
            found[expression] = (False, f"the filter gave {result!r:.100}, not a bool")
    return found


_MATCHES: Verdict = (True, None)
_DOES_NOT_MATCH: Verdict = (False, None)


@dataclass(frozen=True)
class _Plan:
    """The programs of a set of filters, and the keys of `data` they read together."""

    programs: tuple[tuple[str, cel.Program], ...]
    data_keys: frozenset[str] | None
    refused: tuple[tuple[str, Verdict], ...]
    reads_previous: bool = False


@lru_cache(maxsize=PROGRAMS_CACHED // 4)
def _plan(expressions: frozenset[str]) -> _Plan:
    """Worked out once per set of filters (an event's endpoints have the same set as
    the last event's, mostly), not for every event."""
    programs = []
    refused = []
    keys: set[str] | None = set()
    reads_previous = False
    for expression in expressions:
        try:
            program = compiled(expression)
        except FilterError as exc:  # saved before a later version refused it
            refused.append((expression, (False, str(exc))))
            continue
        programs.append((expression, program.program))
        reads_previous |= program.reads_previous
        if program.data_keys is None:
            keys = None
        elif keys is not None:
            keys.update(program.data_keys)
    return _Plan(
        tuple(programs),
        None if keys is None else frozenset(keys),
        tuple(refused),
        reads_previous,
    )


def _failure(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0] if exc.args else exc}"
    return str(exc) or type(exc).__name__


def _data_keys(tokens: list[_Token]) -> frozenset[str] | None:
    """The keys of `data` the filter reads (`data.k`, `data["k"]`), or None when it uses
    `data` in another way (`data.size()`, `"k" in data`, `data[x]`)."""
    keys = set()
    for i, token in enumerate(tokens):
        if token.kind != "name" or token.text != "data":
            continue
        if i > 0 and tokens[i - 1].text == ".":
            continue  # a field of that name: `data.data`
        after = tokens[i + 1 : i + 4]
        if len(after) >= 2 and after[0].text == "." and after[1].kind == "name":
            if len(after) == 3 and after[2].text == "(":
                return None  # a method of the map itself
            keys.add(after[1].text)
        elif len(after) == 3 and after[0].text == "[" and after[2].text == "]":
            key = _plain_string(after[1])
            if key is None:
                return None
            keys.add(key)
        else:
            return None
    return frozenset(keys)


def _plain_string(token: _Token) -> str | None:
    """A quoted string without prefix, escapes or triple quotes, unquoted; else None."""
    text = token.text
    if token.kind != "string" or len(text) < 2 or text[0] not in "'\"" or "\\" in text:
        return None
    if text.startswith(("'''", '"""')):
        return None
    return text[1:-1]


def _parse_message(message: str) -> str:
    found = _PARSE_ERROR.search(message)
    if found is None:
        return f"invalid filter: {message[:500]}"
    line, column, why = found.groups()
    return f"line {line}, column {column}: {why[:500]}"


def _where(expression: str, pos: int) -> str:
    line = expression.count("\n", 0, pos) + 1
    column = pos - (expression.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _check_macros(
    expression: str, tokens: list[_Token], start: int, end: int, variable: str | None
) -> int:
    """Refuse unknown variables and what would cost the square of a list's length;
    count the macros.

    `variable` is the macro's own variable while inside its predicate: there,
    anything else (`data...`) would be read again for each element.
    """
    macros = 0
    i = start
    while i < end:
        token = tokens[i]
        before = tokens[i - 1].text if i > 0 else ""
        after = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if token.kind == "name" and before == "." and after == "(":
            if token.text in _QUADRATIC_MACROS:
                raise FilterError(
                    f"{_where(expression, token.pos)}: {token.text}() is not available in "
                    "filters (its cost grows with the square of the list's length); use "
                    "all(), exists() or exists_one()"
                )
            if token.text in _LINEAR_MACROS:
                close = _closing(tokens, i + 1)
                own, predicate = tokens[i + 2], i + 4  # name ( var , predicate )
                macros += 1 + _check_macros(expression, tokens, predicate, close, own.text)
                i = close + 1
                continue
        if (
            token.kind == "name"
            and before != "."
            and after != "("
            and token.text not in _NOT_VARIABLES
            and token.text != variable
        ):
            if variable is not None:
                raise FilterError(
                    f"{_where(expression, token.pos)}: inside a macro only its own variable "
                    f"({variable}) may be used, not {token.text} (it would be read again for "
                    "every element): compare it outside the macro"
                )
            if token.text not in VARIABLES:
                raise FilterError(
                    f"{_where(expression, token.pos)}: unknown variable {token.text}: a "
                    f"filter sees {', '.join(VARIABLES)}"
                )
        i += 1
    return macros


def _closing(tokens: list[_Token], opening: int) -> int:
    depth = 0
    for i in range(opening, len(tokens)):
        if tokens[i].kind == "punct" and tokens[i].text in "([{":
            depth += 1
        elif tokens[i].kind == "punct" and tokens[i].text in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return len(tokens) - 1  # not reached: the expression compiled
