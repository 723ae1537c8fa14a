"""Sequential mode: inline, one call at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, SyncRunner, is_async_callable, run_async_batch
from fanout.executors._thread import ThreadExecutor


class SequentialExecutor(Executor):
    """Inline, one call at a time, on the orchestrator's own thread.

    With a timeout the call runs on a single helper thread instead, since an
    inline call cannot be interrupted.
    """

    batch_target = 0.002
    max_batch = 256

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._runner = SyncRunner(fn)
        self._async = is_async_callable(fn)
        self._fn = fn
        self._thread: ThreadExecutor | None = None

    async def submit(self, items: list[Any], timeout: float | None) -> Outcome:
        if self._async:
            return await run_async_batch(self._fn, items, timeout, self._deadlines_here())
        if timeout is None:
            return self._runner.run_batch(items)
        if self._thread is None:
            self._thread = ThreadExecutor(self._fn, 1)
        return await self._thread.submit(items, timeout)

    async def aclose(self, cancel: bool = False) -> None:
        self._runner.close()
        if self._deadlines is not None:
            self._deadlines.close()
        if self._thread is not None:
            await self._thread.aclose(cancel)
