"""Sequential mode: inline, one call at a time, on the orchestrator's own thread.

An inline call cannot be interrupted, so with a per-call timeout the calls run
on a single helper thread instead (stopped by abandoning them, as in thread
mode). Coroutine functions are awaited on the loop (stopped by cancelling).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fanout.executors._base import Executor, Stop
from fanout.executors._calls import Outcome, SyncRunner, is_async_callable, run_async_batch
from fanout.executors._thread import ThreadExecutor


class SequentialExecutor(Executor):
    """One call at a time, inline."""

    mode = "sequential"
    stops: Stop = "cancel"
    batch_target = 0.002
    max_batch = 256
    max_concurrency = 1

    def __init__(self) -> None:
        self._fn: Callable[..., Any] | None = None
        self._runner: SyncRunner | None = None
        self._thread: ThreadExecutor | None = None

    def default_concurrency(self) -> int:
        return 1

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        self._fn = fn
        self._thread = None
        self._runner = None
        if is_async_callable(fn):
            self.stops = "cancel"
        elif timeout is None:
            self._runner = SyncRunner(fn)
            self.stops = "cancel"  # never asked: no deadline
        else:
            self._thread = ThreadExecutor()
            self._thread.prepare(fn, 1, timeout)
            self.stops = "abandon"

    def submit(self, items: list[Any]) -> Awaitable[Outcome]:
        if self._thread is not None:
            return self._thread.submit(items)
        if self._runner is not None:
            return self._inline(self._runner, items)
        assert self._fn is not None
        return run_async_batch(self._fn, items)

    async def _inline(self, runner: SyncRunner, items: list[Any]) -> Outcome:
        return runner.run_batch(items)

    def stopped(self, call: Awaitable[Outcome]) -> Awaitable[None] | None:
        return self._thread.stopped(call) if self._thread is not None else None

    async def aclose(self, cancel: bool = False) -> None:
        if self._runner is not None:
            self._runner.close()
        if self._thread is not None:
            await self._thread.aclose(cancel)


