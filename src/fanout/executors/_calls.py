"""Running one batch of calls to a function: the part every executor shares.

A batch's outcome is columnar plain data, cheap to pickle for process workers:
``(values, elapsed, errors)`` where ``values[i]`` is item i's return value
(None when it failed), ``elapsed[i]`` its seconds, and ``errors`` maps the
index of each failed item to its exception (None when all succeeded).
"""

from __future__ import annotations

import array
import asyncio
import inspect
import os
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from fanout._errors import RemoteError

Outcome = tuple[list[Any], Sequence[float], dict[int, BaseException] | None]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """A coroutine function, a partial of one, or an object with ``async def __call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the bound __call__ itself
    return call is not None and inspect.iscoroutinefunction(call)


def failed(error: BaseException, elapsed: float = 0.0) -> Outcome:
    """The outcome of a batch of one item that failed with ``error``."""
    return [None], array.array("d", [elapsed]), {0: error}


def concat(parts: list[Outcome]) -> Outcome:
    """The outcomes of consecutive batches as one."""
    values: list[Any] = []
    elapsed = array.array("d")
    errors: dict[int, BaseException] = {}
    for part_values, part_elapsed, part_errors in parts:
        if part_errors:
            for i, exc in part_errors.items():
                errors[len(values) + i] = exc
        values.extend(part_values)
        elapsed.extend(part_elapsed)
    return values, elapsed, errors or None


def fail_unsendable(
    values: list[Any], errors: dict[int, BaseException] | None,
    dumps: Callable[[Any], object], where: str,
) -> dict[int, BaseException] | None:
    """Record each return value ``dumps`` cannot serialise as its item's failure
    (``values[i]`` becomes None), so a value that cannot travel back from ``where``
    fails only its item; the errors, updated."""
    out = dict(errors or {})
    for i, value in enumerate(values):
        if i in out:
            continue
        try:
            dumps(value)
        except Exception as exc:
            out[i] = RemoteError(
                "PicklingError",
                f"the return value of type {type(value).__qualname__} cannot be sent back "
                f"from {where} ({exc}); return plain data, or use mode='thread'",
            )
            values[i] = None
    return out or None


def where(fn: Callable[..., Any]) -> str:
    """A function for messages: ``name in file.py:line``."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    if code is not None:
        return f"{name} in {os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return str(name)


def short_repr(value: Any) -> str:
    """``repr(value)``, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SyncRunner:
    """Runs calls in the current (non-event-loop) thread.

    An async function, or a sync one that returns a coroutine, is driven to
    completion on an event loop kept for this runner, never returned as a
    coroutine object.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._is_async = is_async_callable(fn)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _await(self, awaitable: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    def run_batch(self, items: list[Any], into: Outcome | None = None) -> Outcome:
        """Call ``fn`` on each item in turn. ``into``, empty ``(values, elapsed,
        errors)`` columns (``errors`` a dict), is filled as the calls finish, so
        another thread can read the finished ones (``finished``) meanwhile."""
        fn = self.fn
        clock = time.perf_counter
        coroutine = types.CoroutineType
        is_async = self._is_async
        values: list[Any]
        elapsed: Any
        errors: dict[int, BaseException] | None
        if into is None:
            values, elapsed, errors = [], array.array("d"), None
        else:
            values, elapsed, errors = into
        add_value = values.append
        add_elapsed = elapsed.append
        last = clock()
        for item in items:
            try:
                value = fn(item)
                if is_async or value.__class__ is coroutine:
                    value = self._await(value)
            except Exception as exc:
                if errors is None:
                    errors = {}
                errors[len(values)] = exc
                value = None
            add_value(value)
            now = clock()
            add_elapsed(now - last)  # last: a reader counts a call finished from here
            last = now
        return values, elapsed, errors or None

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def finished(progress: Outcome) -> Outcome:
    """The calls of a batch that ``run_batch`` is still filling that have finished."""
    values, elapsed, errors = progress
    n = len(elapsed)
    early = {i: e for i, e in dict(errors or {}).items() if i < n}
    return values[:n], elapsed[:n], early or None


async def run_async_batch(fn: Callable[..., Any], items: list[Any]) -> Outcome:
    """Await ``fn(item)`` for each item in turn, on the running loop."""
    clock = time.perf_counter
    values: list[Any] = []
    elapsed: list[float] = []
    errors: dict[int, BaseException] | None = None
    for item in items:
        start = clock()
        try:
            value = await fn(item)
        except Exception as exc:
            if errors is None:
                errors = {}
            errors[len(values)] = exc
            value = None
        values.append(value)
        elapsed.append(clock() - start)
    return values, elapsed, errors
