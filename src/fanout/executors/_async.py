"""Async mode: the coroutine, awaited on the run's loop; stopped by cancelling it.

A sync function in async mode runs on a thread pool instead, off the loop, so a
blocking call cannot stall the other calls (stopped by abandoning, as in
thread mode).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fanout.executors._base import Executor, Stop
from fanout.executors._calls import Outcome, is_async_callable, run_async_batch
from fanout.executors._thread import ThreadExecutor


class AsyncExecutor(Executor):
    """Each call is a coroutine awaited on the event loop."""

    mode = "async"
    stops: Stop = "cancel"
    batch_target = 0.0005
    max_batch = 64

    def __init__(self) -> None:
        self._fn: Callable[..., Any] | None = None
        self._threads: ThreadExecutor | None = None

    def default_concurrency(self) -> int:
        return 100

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        self._fn = fn
        if is_async_callable(fn):
            self._threads = None
            self.stops = "cancel"
            self.batch_target = AsyncExecutor.batch_target
            self.max_batch = AsyncExecutor.max_batch
        else:
            self._threads = ThreadExecutor()
            self._threads.prepare(fn, concurrency, timeout)
            self.stops = "abandon"
            self.batch_target = ThreadExecutor.batch_target
            self.max_batch = ThreadExecutor.max_batch

    def submit(self, items: list[Any]) -> Awaitable[Outcome]:
        if self._threads is not None:
            return self._threads.submit(items)
        assert self._fn is not None
        return run_async_batch(self._fn, items)

    def stopped(self, call: Awaitable[Outcome]) -> Awaitable[None] | None:
        return self._threads.stopped(call) if self._threads is not None else None

    async def aclose(self, cancel: bool = False) -> None:
        if self._threads is not None:
            await self._threads.aclose(cancel)
