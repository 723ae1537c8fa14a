"""Thread mode: a pool of daemon threads fed from one queue.

Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at
interpreter exit, so a call abandoned after a timeout would delay the program's
exit; and ``run_in_executor`` wakes the loop once per call. Here finished
batches are handed back with one wake-up per burst.

Python cannot stop a thread, so a call whose deadline passes is *abandoned*:
its value is discarded and ``stopped(call)`` tells the orchestrator when the
thread is really done with it (the orchestrator holds the call's slot until
then). A call cancelled before a thread picked it up never runs.
"""

from __future__ import annotations

import array
import asyncio
import collections
import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, SyncRunner, finished


class _Call:
    """One batch handed to the pool; ``await`` it for its outcome."""

    __slots__ = ("abandoned", "ended", "executor", "future", "items", "progress", "thread")

    def __init__(
        self, executor: ThreadExecutor, items: list[Any], future: asyncio.Future[Outcome]
    ) -> None:
        self.executor = executor
        self.items = items
        self.future = future
        self.abandoned = False
        #: the thread running it, while it runs
        self.thread: threading.Thread | None = None
        #: set when abandoned while running: done once the thread has finished it
        self.ended: asyncio.Future[None] | None = None
        #: the outcome as the thread fills it in
        self.progress: Outcome = ([], array.array("d"), {})

    def partial(self) -> Outcome:
        """The calls of this batch that have finished so far."""
        return finished(self.progress)

    def __await__(self) -> Generator[Any, None, Outcome]:
        try:
            return (yield from self.future.__await__())
        except asyncio.CancelledError:
            self.executor._abandon(self)
            raise


class ThreadExecutor(Executor):
    """Each call runs on one of a pool of daemon threads."""

    mode = "thread"
    stops = "abandon"
    batch_target = 0.002
    max_batch = 1024

    def __init__(self) -> None:
        self._fn: Callable[..., Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[_Call, Outcome | BaseException]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._wake_pending = False
        self._threads = 0
        self._busy = 0  # calls handed over and not finished, abandoned ones included
        self._all: list[threading.Thread] = []
        self._stuck: set[threading.Thread] = set()  # running an abandoned call
        self._started = 0

    def default_concurrency(self) -> int:
        return 32

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        self._fn = fn

    def _spawn(self) -> None:
        self._started += 1
        thread = threading.Thread(
            target=self._work, name=f"fanout-thread-{self._started}", daemon=True
        )
        self._all.append(thread)
        thread.start()

    def _work(self) -> None:
        assert self._fn is not None
        runner = SyncRunner(self._fn)
        jobs = self._jobs
        lock = self._lock
        me = threading.current_thread()
        try:
            while True:
                call = jobs.get()
                if call is None:
                    return
                with lock:
                    skip = call.abandoned  # cancelled while queued: never runs
                    if skip:
                        self._busy -= 1
                    else:
                        call.thread = me
                if skip:
                    continue
                result: Outcome | BaseException
                try:
                    result = runner.run_batch(call.items, call.progress)
                except BaseException as exc:  # pragma: no cover - run_batch records errors
                    result = exc
                with lock:
                    self._busy -= 1
                    call.thread = None
                    self._stuck.discard(me)
                self._deliver(call, result)
        finally:
            runner.close()
            with lock:
                self._threads -= 1

    def _deliver(self, call: _Call, result: Outcome | BaseException) -> None:
        self._done.append((call, result))
        with self._lock:
            if self._wake_pending or self._loop is None:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop has closed: nobody waits for this result
            pass

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        done = self._done
        while done:
            call, result = done.popleft()
            if call.ended is not None and not call.ended.done():
                call.ended.set_result(None)
            fut = call.future
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    def submit(self, items: list[Any]) -> _Call:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        call = _Call(self, items, loop.create_future())
        with self._lock:
            self._busy += 1
            need_thread = self._busy > self._threads
            if need_thread:
                self._threads += 1
        if need_thread:
            self._spawn()
        self._jobs.put(call)
        return call

    def _abandon(self, call: _Call) -> None:
        """The await of ``call`` was cancelled (its deadline, or the run's end)."""
        with self._lock:
            call.abandoned = True
            running = call.thread
            if running is not None:
                self._stuck.add(running)
        if running is not None and call.ended is None and self._loop is not None:
            # resolved by _drain, which runs on this loop after this returns
            call.ended = self._loop.create_future()

    def stopped(self, call: Any) -> asyncio.Future[None] | None:
        ended: asyncio.Future[None] | None = getattr(call, "ended", None)
        return ended

    async def aclose(self, cancel: bool = False) -> None:
        with self._lock:
            threads = self._threads
            # A thread still running an abandoned call is never waited for.
            idle = [t for t in self._all if t.is_alive() and t not in self._stuck]
        for _ in range(threads):
            self._jobs.put(None)
        if not cancel:
            # Idle threads exit at once; waiting for them keeps a following run
            # from starting its threads while these are still winding down.
            await asyncio.to_thread(_join_all, idle)


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()
