"""The executor protocol: how the calls of a run are executed, behind one interface.

An executor runs batches of calls of one function *somewhere* (inline, on
threads, on the event loop, in worker processes, on a cluster) and nothing
else. The orchestrator owns every policy: the input, concurrency and rate,
retries, per-call deadlines, ordering, cancellation, progress and output.

The life of an executor in one run::

    executor.warm_up(fn, workers)                # sync API only, in the caller's thread
    executor.prepare(fn, concurrency, timeout)   # check the function, set up
    executor.check_item(first_item)              # refuse an item before anything runs
    outcome = await executor.submit(items)       # any number of times, concurrently
    ...                                          # a deadline cancels the await (below)
    await executor.aclose(cancel=...)            # the run is over

``submit(items)`` returns an awaitable of the batch's ``Outcome`` — one value or
error per item, see ``fanout.executors._calls``. A call's own exception is part
of the outcome, never raised; ``submit`` raises only when the executor itself
breaks (then the run stops and the error reaches the caller).

Deadlines and stops: when a call's deadline passes (or the run is cancelled),
the orchestrator cancels the awaitable returned by ``submit``. ``stops`` says
honestly what that does to the user's code:

- ``"cancel"``: the call is cancelled where it runs and ends at once (coroutines);
- ``"kill"``: the worker running it is killed and replaced (worker processes);
- ``"abandon"``: it cannot be stopped (Python cannot stop a thread): it runs on
  and its value is discarded. ``stopped(call)`` then returns an awaitable that
  ends when the user's code has really finished, and the orchestrator keeps the
  call's concurrency slot until then, so the function never runs more than
  ``concurrency`` times at once.

A backend is one subclass in one module, registered by one line in
``fanout.executors._REGISTRY``; a backend that takes options (a cluster
address) is configured in its constructor and handed to the API as
``fanout.map(fn, items, executor=MyExecutor(...))``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from fanout.executors._calls import Outcome

Stop = Literal["cancel", "kill", "abandon"]


class Executor(ABC):
    """Runs batches of calls of one function somewhere; one subclass per backend.

    An instance serves one run at a time and may be reused by later runs.
    """

    #: the mode name this executor is registered under
    mode: ClassVar[str] = ""
    #: how a call is stopped when its deadline passes (see the module docstring)
    stops: Stop = "cancel"
    #: seconds a batch of tiny calls should last, to amortise the hand-off cost
    batch_target: float = 0.0
    #: the largest batch of tiny calls handed over at once (1: no batching)
    max_batch: int = 1
    #: whether the calls run in this process (False: no user code runs here)
    calls_run_here: bool = True
    #: the most calls this backend can run at once (None: no limit of its own)
    max_concurrency: ClassVar[int | None] = None

    def default_concurrency(self) -> int:
        """Calls at once when the user gives no ``concurrency`` (a configured instance
        may answer for what it was configured with, e.g. the size of its cluster)."""
        return os.cpu_count() or 2

    @abstractmethod
    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        """Get ready to run ``fn`` with up to ``concurrency`` calls at once.

        Raise ``fanout.ConfigError`` (one line: what, where, the fix) if ``fn``
        cannot run here. ``timeout`` is the per-call deadline the orchestrator
        will enforce, for executors that must pick where calls run accordingly.
        """

    def warm_up(self, fn: Callable[..., Any], workers: int) -> None:  # noqa: B027 - optional
        """Called by the sync API from the caller's thread before it starts its event
        loop thread: a chance to start ``workers`` workers while the program may still
        run a single thread (forking is then safe and fast)."""

    def check_item(self, item: Any) -> None:  # noqa: B027 - optional hook
        """Raise ``fanout.ConfigError`` before anything runs if ``item`` cannot be run here."""

    @abstractmethod
    def submit(self, items: list[Any]) -> Awaitable[Outcome]:
        """Run the function on each item; one outcome per item, in order.

        Cancelling the returned awaitable stops the call as ``stops`` says. It may
        have ``started``, a future done when the calls really start (a deadline
        counts from then), and ``partial()``, the outcome of the calls of the batch
        finished so far (the orchestrator files those of a slow batch early, so a
        call that hangs does not hold back the results of the ones before it).
        """

    def stopped(self, call: Awaitable[Outcome]) -> Awaitable[None] | None:
        """After ``call`` (an awaitable from ``submit``) was cancelled: an awaitable
        that ends when the user's code has really stopped running, or None when
        it already has (``"cancel"`` and ``"kill"`` executors)."""
        return None

    async def aclose(self, cancel: bool = False) -> None:  # noqa: B027 - optional hook
        """The run is over; ``cancel``: it was cancelled (stop calls still running)."""
