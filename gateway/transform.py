"""Transformations: user JavaScript run in V8 isolates (mini-racer), never in this interpreter.

A transformation defines `function handler(webhook)`; it gets a JSON object and
returns one (its shape is checked by the caller: `outbound/transforms.py`,
`inbound/ingest.py`). What the code can reach is V8 alone: no file, network,
process or timer API (mini-racer's `setTimeout`, `Atomics.wait*` and
`FinalizationRegistry` are removed), and every built-in object is frozen before any
user code runs, so code cannot leave anything behind for the next call, its own or
another endpoint's. Each call builds the handler afresh from the compiled code, so
no state survives a call; and each call in shows the isolate's secret, so code
cannot define or run another code in its place.

Each isolate runs JavaScript on its own thread (mini-racer's), and answers through
the event loop: a call never blocks the loop. Calls on one isolate run one after
the other, so the process keeps a few (`ISOLATES`), and one code may use at most
half of them at once: a runaway script holds at most those, for at most its time
limit, and the others keep serving every other endpoint.

Calls of one code at the same moment run in one call into V8 (`gateway.groupcall`),
each webhook with its own answer or error: getting into V8 and back costs more than
a short script does. A call that runs out of time or memory, or whose promise
callbacks keep running after it returned, costs its isolate: it is closed (which
stops it) and a new one is made; the webhooks of a group that did run again one by
one, so that only the runaway fails. Compiled code is cached per isolate by the
code's hash, a bounded number.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import re
import secrets
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from py_mini_racer import JSEvalException, JSOOMException, MiniRacer

from gateway.errors import Invalid
from gateway.groupcall import GroupCall

# Isolates per process (per event loop); one code may use half of them at once.
ISOLATES = 4
# Each isolate's heap; past it the call fails and the isolate is replaced.
MEMORY_LIMIT = 64 * 1024 * 1024
# Compiled codes kept per isolate, least recently used dropped first.
CACHED_CODES = 256
# Webhooks of one code run in one call into V8 at most.
BATCH = 64
# When such a call runs out of time, its webhooks run one by one: for this many time
# limits at most (a script that always loops costs its deliveries that, not more).
ALONE_BUDGET = 10
# Longest code accepted (characters): the API schemas hold the same bound.
MAX_CODE_CHARS = 64 * 1024
# The answer of a call once serialised, in characters, at most.
MAX_RESULT_CHARS = 1024 * 1024

# Runs once in each new isolate, before any user code.
# A function of the isolate's token: what calls in must show, so that code running in
# the isolate cannot define, drop or run another code in its place.
_PRELUDE = r"""
((token) => {
  'use strict';
  // Nothing that waits or schedules work for later: mini-racer's timers and what
  // they are built on. (V8 alone has no file, network or process API.)
  const names = ['setTimeout', 'clearTimeout', '__timer_manager', 'WebAssembly',
    'FinalizationRegistry'];  // its callbacks would run after the call, at any time
  for (const name of names) {
    // mini-racer declares its timers with `var`: they cannot be deleted, only emptied.
    if (!Reflect.deleteProperty(globalThis, name)) globalThis[name] = undefined;
  }
  delete Atomics.wait;
  delete Atomics.waitAsync;

  const codes = new Map();
  const { parse, stringify } = JSON;
  const mapGet = Map.prototype.get, mapSet = Map.prototype.set, mapDelete = Map.prototype.delete;
  const FunctionCtor = Function;
  const describe = (v) => v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;

  function define(key, code) {
    // A function body parsed on its own: the code cannot reach out of it. Strict,
    // so that an undeclared name is an error rather than a write to the global.
    const make = new FunctionCtor(
      '"use strict";\n' + code +
      '\n;return typeof handler === "function" ? handler : undefined;');
    mapSet.call(codes, key, make);
  }

  function handlerOf(key) {
    const handler = mapGet.call(codes, key)();
    if (typeof handler !== 'function') {
      throw new TypeError('the code must define function handler(webhook)');
    }
    return handler;
  }

  // The user's code is the body of a `new Function`: its lines come 3 after the
  // wrapper's (two of the Function constructor's, one of 'use strict').
  const userFrame = /\(eval at [^\n]*?, <anonymous>:(\d+):\d+\)/;
  const execRe = RegExp.prototype.exec;

  function errorText(e) {
    try {
      if (!(e instanceof Error)) return 'uncaught ' + describe(e) + ': ' + String(e);
      let text = String(e.name) + ': ' + String(e.message);
      const frame = execRe.call(userFrame, String(e.stack));
      if (frame && frame[1] - 3 > 0) text = 'line ' + (frame[1] - 3) + ': ' + text;
      return text;
    } catch (_) {
      return 'uncaught exception';
    }
  }

  function runOne(key, input, maxChars) {
    const out = handlerOf(key)(input);
    if (out === null || typeof out !== 'object' || Array.isArray(out)) {
      throw new TypeError('handler must return the webhook object, not ' + describe(out));
    }
    if (typeof out.then === 'function') {
      throw new TypeError('handler must return the webhook object, not a promise');
    }
    const text = stringify(out);
    if (text.length > maxChars) {
      throw new RangeError('the result is ' + text.length + ' characters, over the limit of '
        + maxChars);
    }
    return text;
  }

  // Many webhooks (a JSON array) in one call: one answer each, `[0, result]` or
  // `[1, "the error"]`, as the JSON text of an array.
  function run(key, inputs, maxChars) {
    const parts = [];
    for (const input of parse(inputs)) {
      try {
        parts.push('[0,' + runOne(key, input, maxChars) + ']');
      } catch (e) {
        parts.push('[1,' + stringify(errorText(e)) + ']');
      }
    }
    return '[' + parts.join(',') + ']';
  }

  const guarded = (f) => (t, ...args) => {
    if (t !== token) throw new TypeError('not allowed');
    return f(...args);
  };
  const api = Object.freeze({
    define: guarded(define),
    run: guarded(run),
    check: guarded((key) => { handlerOf(key); return true; }),
    forget: guarded((key) => mapDelete.call(codes, key)),
  });
  Object.defineProperty(globalThis, '__gateway', { value: api });

  // Setting a property that an object inherits read-only (`e.name = ...` on an error,
  // `o.toString = ...`) would throw once prototypes are frozen: those inherited ones
  // become accessors that set an own property instead (as SES does).
  const roots = [Object.prototype, Function.prototype, Array.prototype, Error.prototype];
  for (const E of [EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError]) {
    roots.push(E.prototype);
  }
  for (const proto of roots) {
    for (const key of Reflect.ownKeys(proto)) {
      const desc = Object.getOwnPropertyDescriptor(proto, key);
      if (!('value' in desc) || !desc.configurable) continue;
      const value = desc.value;
      Object.defineProperty(proto, key, {
        get() { return value; },
        set(v) {
          if (this === proto) throw new TypeError('cannot change a built-in');
          Object.defineProperty(this, key, {
            value: v, writable: true, enumerable: true, configurable: true });
        },
        enumerable: desc.enumerable,
        configurable: false,
      });
    }
  }

  // Freeze everything reachable from the global object and the intrinsics that are
  // not (the prototypes of generators, async functions and iterators).
  const hidden = [
    function* () {}, async function () {}, async function* () {},
    (function* () {})(), (async function* () {})(),
    [][Symbol.iterator](), new Map().entries(), new Set().values(), ''[Symbol.iterator](),
    /a/[Symbol.matchAll](''),
  ];
  const stack = [globalThis, ...hidden];
  const seen = new Set();
  while (stack.length) {
    const o = stack.pop();
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) {
      continue;
    }
    seen.add(o);
    Object.freeze(o);
    stack.push(Object.getPrototypeOf(o));
    for (const key of Reflect.ownKeys(o)) {
      const desc = Object.getOwnPropertyDescriptor(o, key);
      if ('value' in desc) stack.push(desc.value);
      else stack.push(desc.get, desc.set);
    }
  }
  return true;
})
"""

_LINE_RE = re.compile(r"^undefined:(\d+): (.*)$")
# `new Function` puts two lines before the body, and the prelude one more.
_LINES_BEFORE_CODE = 3


class TransformError(Exception):
    """The code failed: it did not compile, threw, ran too long, or returned a wrong
    shape. The message is meant for the user (an attempt's log, a 422, a test)."""


def code_key(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _message(exc: JSEvalException, code: str) -> str:
    """The JavaScript error in one line, with the code's own line number when given."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    match = _LINE_RE.match(first)
    if match:
        line = int(match.group(1)) - _LINES_BEFORE_CODE
        if line > code.count("\n") + 1:
            first = f"at the end of the code: {match.group(2)}"
        else:
            first = f"line {line}: {match.group(2)}" if line > 0 else match.group(2)
    else:
        # A runtime error: V8's message is the line after the stack's location lines.
        for candidate in text.splitlines():
            if re.match(r"^[A-Za-z]*Error: |^Uncaught ", candidate):
                first = candidate
                break
    return first[:1000]


@dataclass
class _Isolate:
    racer: MiniRacer
    token: str  # shown by every call in (see _PRELUDE)
    codes: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def close(self) -> None:
        self.racer.close()


class Runtime:
    """The isolates of one event loop, and the calls into them."""

    def __init__(self, timeout_ms: int, isolates: int = ISOLATES) -> None:
        self.timeout = timeout_ms / 1000
        self._size = isolates
        self._idle: asyncio.Queue[_Isolate | None] = asyncio.Queue()
        for _ in range(isolates):
            self._idle.put_nowait(None)  # made on first use
        self._per_code: dict[str, asyncio.Semaphore] = {}
        self._groups: dict[str, GroupCall[str, Any]] = {}

    async def run(self, code: str, webhook_json: str) -> Any:
        """The handler's answer (parsed JSON) for the webhook given as JSON text.

        Calls of one code at the same time are run together, in one call into V8 (each
        with its own answer or error): what a call costs is mostly getting there.
        """
        key = code_key(code)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= CACHED_CODES:
                self._groups = {}  # groups under way finish what they hold
            group = self._groups[key] = GroupCall(partial(self._run_batch, key, code), BATCH)
        return await group(webhook_json)

    async def _run_batch(self, key: str, code: str, inputs: list[str]) -> list[Any]:
        arguments = f"{json.dumps('[' + ','.join(inputs) + ']')}, {MAX_RESULT_CHARS}"
        try:
            answers = json.loads(await self._call(key, code, "run", arguments))
        except _Broken as exc:
            if len(inputs) == 1:
                return [exc]
            return await self._one_by_one(key, code, inputs)
        except TransformError as exc:
            return [exc] * len(inputs)
        return [TransformError(value) if failed else value for failed, value in answers]

    async def _one_by_one(self, key: str, code: str, inputs: list[str]) -> list[Any]:
        """Which of them ran away is not known: each runs alone, in its own time, up to
        `ALONE_BUDGET` limits' worth in all; those left then fail unrun."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ALONE_BUDGET * self.timeout
        answers: list[Any] = []
        for one in inputs:
            if loop.time() > deadline:
                answers.append(
                    TransformError(
                        "not run: other runs of this code at the same time used up its time"
                    )
                )
                continue
            answers += await self._run_batch(key, code, [one])
        return answers

    async def check(self, code: str) -> None:
        """TransformError unless the code compiles and defines `handler`."""
        if len(code) > MAX_CODE_CHARS:
            raise TransformError(f"the code is over {MAX_CODE_CHARS} characters")
        key = code_key(code)
        await self._call(key, code, "check")

    async def _call(self, key: str, code: str, method: str, arguments: str = "") -> Any:
        """`__gateway.<method>(token, key, <arguments>)` in an isolate that has the code."""
        # One code at most on half the isolates: a runaway leaves the rest to others.
        limit = self._per_code.get(key)
        if limit is None:
            if len(self._per_code) > 10 * CACHED_CODES:
                self._per_code = {k: s for k, s in self._per_code.items() if s.locked()}
            limit = self._per_code[key] = asyncio.Semaphore(max(1, self._size // 2))
        async with limit:
            isolate = await self._idle.get()
            try:
                if isolate is None:
                    isolate = self._new_isolate()
                result = await self._call_in(isolate, key, code, method, arguments)
            except TransformError as exc:
                if isinstance(exc, _Broken):
                    self._replace(isolate)
                else:
                    self._idle.put_nowait(isolate)
                raise
            except BaseException:  # cancelled mid-call, or mini-racer failed: start anew
                self._replace(isolate)
                raise
            self._idle.put_nowait(isolate)
            return result

    def _replace(self, isolate: _Isolate | None) -> None:
        if isolate is not None:
            isolate.close()  # stops whatever still runs in it
        self._idle.put_nowait(None)

    def _new_isolate(self) -> _Isolate:
        racer = MiniRacer()  # made inside the running loop: it answers through it
        _live.add(racer)
        racer.set_hard_memory_limit(MEMORY_LIMIT)
        token = secrets.token_hex(16)
        racer.eval(f"({_PRELUDE})({json.dumps(token)})")
        return _Isolate(racer, token)

    async def _call_in(
        self, isolate: _Isolate, key: str, code: str, method: str, arguments: str
    ) -> Any:
        """Raises TransformError; any other exception means the isolate is to be replaced."""
        token = json.dumps(isolate.token)
        args = f"{token}, {json.dumps(key)}" + (f", {arguments}" if arguments else "")
        expression = f"__gateway.{method}({args})"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        racer = isolate.racer
        try:
            async with asyncio.timeout_at(deadline):
                if key not in isolate.codes:
                    await racer.eval_cancelable(
                        f"__gateway.define({token}, {json.dumps(key)}, {json.dumps(code)})"
                    )
                    isolate.codes[key] = None
                    if len(isolate.codes) > CACHED_CODES:
                        old, _ = isolate.codes.popitem(last=False)
                        await racer.eval_cancelable(f"__gateway.forget({token}, {json.dumps(old)})")
                isolate.codes.move_to_end(key)
                result = await racer.eval_cancelable(expression)
        except TimeoutError:
            raise _Broken(f"did not finish within {self.timeout * 1000:g} ms") from None
        except JSOOMException:
            raise _Broken(f"ran out of memory (limit {MEMORY_LIMIT // 2**20} MiB)") from None
        except JSEvalException as exc:
            if racer.was_hard_memory_limit_reached():
                raise _Broken(f"ran out of memory (limit {MEMORY_LIMIT // 2**20} MiB)") from None
            raise TransformError(_message(exc, code)) from None
        # Promise callbacks the code left run after it returned: whatever they do must
        # end within a time limit of their own, or this isolate (and only this call)
        # pays. Of their own: the isolate may also collect the call's garbage now.
        try:
            async with asyncio.timeout(self.timeout):
                await racer.eval_cancelable("0")
        except TimeoutError:
            raise _Broken(
                f"its promise callbacks did not finish within {self.timeout * 1000:g} ms"
            ) from None
        return result


class _Broken(TransformError):
    """A TransformError after which the isolate is replaced."""


# Every isolate not yet closed, closed at exit: freed later, during the interpreter's
# finalization, an isolate waits for its thread, which Python has stopped by then, and
# the process never ends.
_live: weakref.WeakSet[MiniRacer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for racer in list(_live):
        racer.close()


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = (
    weakref.WeakKeyDictionary()
)


def runtime(timeout_ms: int) -> Runtime:
    """The running loop's runtime (isolates answer through the loop that made them)."""
    loop = asyncio.get_running_loop()
    found = _runtimes.get(loop)
    if found is None or found.timeout != timeout_ms / 1000:
        found = _runtimes[loop] = Runtime(timeout_ms)
    return found


async def checked(code: str | None, timeout_ms: int) -> str | None:
    """The code (a field `transformation` of a request body) once it compiles and defines
    `handler`: else a 422 naming the field, with the JavaScript error."""
    if code is not None:
        try:
            await runtime(timeout_ms).check(code)
        except TransformError as exc:
            raise Invalid(f"transformation: {exc}", loc=("body", "transformation")) from None
    return code
