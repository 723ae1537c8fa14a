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
import math
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from fanout._errors import CallTimeout

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

    def run_batch(self, items: list[Any]) -> Outcome:
        fn = self.fn
        clock = time.perf_counter
        coroutine = types.CoroutineType
        is_async = self._is_async
        values: list[Any] = []
        elapsed = array.array("d")
        errors: dict[int, BaseException] | None = None
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
            add_elapsed(now - last)
            last = now
        return values, elapsed, errors

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None


class Deadlines:
    """The deadlines of the calls running on one loop, kept with one timer.

    A timer per call (set, then cancelled) costs more than the rest of a call's
    bookkeeping. Calls with the same timeout expire in the order they started,
    so one timer set for the earliest deadline serves them all: it fires about
    once per timeout, finds that call finished, and moves on to the next.
    A call whose deadline passes has its task cancelled, like ``asyncio.timeout``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: dict[asyncio.Task[Any], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, task: asyncio.Task[Any], timeout: float) -> None:
        """Cancel ``task`` in ``timeout`` seconds unless ``remove``d first."""
        at = self.loop.time() + timeout
        self._due[task] = at
        if at < self._timer_at:
            self._arm(at)

    def remove(self, task: asyncio.Task[Any]) -> bool:
        """Forget ``task``'s deadline; True if it had passed (the task was cancelled)."""
        return self._due.pop(task, None) is None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.loop.time()  # uvloop may fire a timer up to 1 ms early: then re-arm
        late = [task for task, at in self._due.items() if at <= now]
        for task in late:
            del self._due[task]
            task.cancel()
        if self._due:
            self._arm(min(self._due.values()))


async def run_async_batch(
    fn: Callable[..., Any], items: list[Any], timeout: float | None, deadlines: Deadlines,
) -> Outcome:
    """Await ``fn(item)`` for each item in turn, on ``deadlines.loop`` (the running
    one); a timeout cancels the call."""
    clock = time.perf_counter
    values: list[Any] = []
    elapsed: list[float] = []
    errors: dict[int, BaseException] | None = None
    # With the loop given, no getpid() system call (asyncio makes one to find it).
    task = asyncio.current_task(deadlines.loop) if timeout is not None else None
    for item in items:
        start = clock()
        try:
            if task is None or timeout is None:
                value = await fn(item)
            else:
                base = task.cancelling()
                deadlines.add(task, timeout)
                try:
                    value = await fn(item)
                except asyncio.CancelledError:
                    if not deadlines.remove(task) or task.uncancel() > base:
                        raise  # cancelled from outside, not by our deadline
                    raise CallTimeout(timeout) from None
                except BaseException:
                    deadlines.remove(task)
                    raise
                if deadlines.remove(task):  # the call swallowed our cancellation
                    task.uncancel()
        except Exception as exc:
            if errors is None:
                errors = {}
            errors[len(values)] = exc
            value = None
        values.append(value)
        elapsed.append(clock() - start)
    return values, elapsed, errors
