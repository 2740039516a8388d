"""The transformation runtime (gateway/transform.py) on its own: what code can reach,
what it cannot leave behind, how its failures read, and that a runaway holds only
its own calls. Real V8 isolates, no gateway around them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.transform import Runtime, TransformError, code_key

WEBHOOK = json.dumps(
    {
        "method": "POST",
        "url": "https://example.com/hook",
        "headers": {},
        "event_type": "user.created",
        "payload": {"data": {"n": 1}},
    }
)
ECHO = "function handler(webhook) { return webhook; }"


def _run(test: Callable[[Runtime], Awaitable[Any]], timeout_ms: int = 100) -> Any:
    async def go() -> Any:
        return await test(Runtime(timeout_ms))

    return asyncio.run(go())


def _error(code: str, timeout_ms: int = 100) -> str:
    async def test(runtime: Runtime) -> str:
        with pytest.raises(TransformError) as failed:
            await runtime.run(code, WEBHOOK)
        return str(failed.value)

    return _run(test, timeout_ms)  # type: ignore[no-any-return]


def test_nothing_but_ecmascript_is_reachable() -> None:
    probe = """
    function handler(w) {
      const kinds = {};
      for (const name of ['setTimeout', 'setInterval', 'clearTimeout', 'require', 'process',
          'fetch', 'XMLHttpRequest', 'WebAssembly', 'FinalizationRegistry', 'Deno', 'Bun']) {
        kinds[name] = typeof globalThis[name];
      }
      kinds.wait = typeof Atomics.wait;
      kinds.waitAsync = typeof Atomics.waitAsync;
      return {payload: kinds};
    }
    """
    result = _run(lambda runtime: runtime.run(probe, WEBHOOK))
    assert set(result["payload"].values()) == {"undefined"}, result


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("function handler(w) { Object.prototype.leak = 1; return w; }", "not extensible"),
        ("function handler(w) { JSON.parse = () => ({}); return w; }", "read only"),
        ("function handler(w) { leaked = w; return w; }", "leaked is not defined"),
        ("function handler(w) { globalThis.leaked = w; return w; }", "not extensible"),
    ],
)
def test_code_cannot_change_what_other_code_shares(code: str, error: str) -> None:
    assert error in _error(code)


def test_no_state_survives_a_call() -> None:
    counter = "let calls = 0; function handler(w) { calls += 1; return {payload: calls}; }"

    async def test(runtime: Runtime) -> list[Any]:
        return [(await runtime.run(counter, WEBHOOK))["payload"] for _ in range(3)]

    assert _run(test) == [1, 1, 1]


def test_code_cannot_replace_another_code_in_the_isolate() -> None:
    victim = "function handler(w) { return {payload: 'victim'}; }"
    evil = (
        "function handler(w) { __gateway.define('', "
        f"{json.dumps(code_key(victim))}, 'function handler() {{ return {{payload: 1}} }}');"
        " return w; }"
    )

    async def test(runtime: Runtime) -> tuple[str, Any]:
        await runtime.run(victim, WEBHOOK)
        with pytest.raises(TransformError) as failed:
            await runtime.run(evil, WEBHOOK)
        return str(failed.value), (await runtime.run(victim, WEBHOOK))["payload"]

    error, after = _run(test)
    assert "not allowed" in error and after == "victim"


def test_failures_read_as_javascript_errors_with_their_line() -> None:
    assert _error("const a = 1;\nfunction handler(w) {\n  return w.nope.nope;\n}") == (
        "line 3: TypeError: Cannot read properties of undefined (reading 'nope')"
    )
    assert _error("function handler(w) { throw 'a string'; }") == "uncaught string: a string"
    assert _error("function handler(w) { return Promise.resolve(w); }").endswith("not a promise")
    assert _error("function handler(w) { while (true) {} }") == "did not finish within 100 ms"
    assert "promise callbacks" in _error(
        "function handler(w) { (async () => { await 0; while (true) {} })(); return w; }"
    )
    assert "out of memory" in _error(
        "function handler(w) { const a = []; while (true) a.push(new Array(1e5).fill(a.length)); }",
        timeout_ms=10_000,
    )


def test_a_compile_error_names_its_line() -> None:
    async def test(runtime: Runtime) -> str:
        with pytest.raises(TransformError) as failed:
            await runtime.check("function handler(w) {\n  return w +;\n}")
        return str(failed.value)

    assert _run(test) == "line 2: SyntaxError: Unexpected token ';'"


def test_a_runaway_fails_alone_among_calls_of_its_code_and_holds_no_other_code() -> None:
    """Calls of one code at the same time run together; when one of them runs away
    the others still get their answers, and another code's calls are not held."""
    picky = "function handler(w) { if (w.payload.loop) while (true) {} return w; }"

    async def test(runtime: Runtime) -> tuple[list[Any], bool]:
        inputs = [json.dumps({"payload": {"loop": i == 3, "i": i}}) for i in range(8)]
        picky_calls = asyncio.gather(
            *(runtime.run(picky, one) for one in inputs), return_exceptions=True
        )
        await asyncio.sleep(0)  # the batch is under way
        await runtime.run(ECHO, WEBHOOK)
        held = picky_calls.done()  # the runaway runs for its 2 s limit, twice
        return await picky_calls, held

    results, held = _run(test, timeout_ms=2000)
    assert not held, "the other code's call waited for the runaway"
    assert isinstance(results[3], TransformError) and "did not finish" in str(results[3])
    assert [r["payload"]["i"] for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
