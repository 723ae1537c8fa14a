"""Running one batch of calls to a function: the part every executor shares.

An *outcome* is ``(ok, value_or_exception, elapsed_seconds)``, plain data that
pickles, so a process worker can send it back as is.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

Outcome = tuple[bool, Any, float]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """A coroutine function, a partial of one, or an object with ``async def __call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the bound __call__ itself
    return call is not None and inspect.iscoroutinefunction(call)


class SyncRunner:
    """Runs calls in the current (non-event-loop) thread.

    An async function, or a sync one that returns a coroutine, is driven to
    completion on an event loop kept for this runner, never returned as a
    coroutine object.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._loop: asyncio.AbstractEventLoop | None = None

    def _await(self, awaitable: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    def run_batch(self, items: list[Any]) -> list[Outcome]:
        fn = self.fn
        clock = time.perf_counter
        out: list[Outcome] = []
        append = out.append
        for item in items:
            start = clock()
            try:
                value = fn(item)
                if inspect.isawaitable(value):
                    value = self._await(value)
            except Exception as exc:
                append((False, exc, clock() - start))
            else:
                append((True, value, clock() - start))
        return out

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None
