"""Async mode: the coroutine, awaited on the run's loop."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, run_async_batch


class AsyncExecutor(Executor):
    """Awaits the coroutine on the loop; a timeout cancels it."""

    batch_target = 0.0005
    max_batch = 64

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn

    def submit(  # not async: returns the coroutine, so one frame less per resume
        self, items: list[Any], timeout: float | None
    ) -> Coroutine[Any, Any, Outcome]:
        return run_async_batch(self._fn, items, timeout, self._deadlines_here())

    async def aclose(self, cancel: bool = False) -> None:
        if self._deadlines is not None:
            self._deadlines.close()
