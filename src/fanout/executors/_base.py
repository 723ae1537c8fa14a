"""The executor protocol: how one call runs, behind one interface.

An executor has one job: ``await submit(items, timeout)`` runs ``fn`` on each
item and returns one outcome per item; ``aclose(cancel)`` releases it. The
orchestrator owns every policy (limits, retries, ordering, timeouts' meaning,
output).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from fanout.executors._calls import Deadlines, Outcome


class Executor(ABC):
    """Runs batches of calls of one function somewhere."""

    #: seconds a batch of tiny calls should last, to amortise the hand-off cost
    batch_target: float = 0.0
    #: the largest batch of tiny calls handed over at once
    max_batch: int = 1
    #: whether the calls run in this process (False: no user code runs here)
    calls_run_here: bool = True
    #: the run's loop, once a batch was submitted
    _loop: asyncio.AbstractEventLoop | None = None

    _deadlines: Deadlines | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The run's loop, looked up once: asyncio's lookup makes a getpid() system call."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _deadlines_here(self) -> Deadlines:
        """The deadlines of the calls this executor awaits on the run's loop."""
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines(self._running_loop())
        return deadlines

    @abstractmethod
    async def submit(self, items: list[Any], timeout: float | None) -> Outcome:
        """Run the function on each item; one outcome per item, in order."""

    async def aclose(self, cancel: bool = False) -> None:  # noqa: B027 - optional hook
        """Release workers; ``cancel`` abandons (or kills) calls still running."""

    def check_item(self, item: Any) -> None:  # noqa: B027 - optional hook
        """Raise a ConfigError before anything runs if ``item`` cannot be run here."""
