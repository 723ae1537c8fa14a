"""How one call runs: the only thing that differs between modes.

An executor has one job: ``await submit(items, timeout)`` runs ``fn`` on each
item and returns one outcome per item; ``aclose(cancel)`` releases it. The
orchestrator owns every policy (limits, retries, ordering, timeouts' meaning,
output). ``create_executor`` is the one place that maps a mode to a class; a
cluster backend is one more class and one more entry in ``_EXECUTORS``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any

from fanout._calls import (
    Deadlines,
    Outcome,
    SyncRunner,
    failed,
    is_async_callable,
    run_async_batch,
)
from fanout._errors import CallTimeout, ConfigError

MODES = ("sequential", "thread", "async", "process", "auto")


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


class _Job:
    __slots__ = ("abandoned", "future", "items", "thread")

    def __init__(self, items: list[Any], future: asyncio.Future[Outcome]) -> None:
        self.items = items
        self.future = future
        self.abandoned = False
        self.thread: threading.Thread | None = None


class ThreadExecutor(Executor):
    """A pool of daemon threads fed from one queue.

    Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at
    interpreter exit, so a call abandoned after a timeout would delay the
    program's exit; and ``run_in_executor`` wakes the loop once per call.
    Here finished batches are handed back with one wake-up per burst, and a
    thread whose call timed out is replaced and left to finish on its own.
    """

    batch_target = 0.002
    max_batch = 1024

    def __init__(self, fn: Callable[..., Any], size: int) -> None:
        self._fn = fn
        self._size = size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[_Job, Outcome | BaseException]] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._threads = 0
        self._busy = 0  # jobs handed over and not finished, abandoned ones included
        self._all: list[threading.Thread] = []
        self._abandoned: set[threading.Thread] = set()
        self._started = 0
        self._closed = False

    def _spawn(self) -> None:
        self._started += 1
        thread = threading.Thread(
            target=self._work, name=f"fanout-thread-{self._started}", daemon=True
        )
        self._all.append(thread)
        thread.start()

    def _work(self) -> None:
        runner = SyncRunner(self._fn)
        jobs = self._jobs
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                with self._lock:
                    job.thread = threading.current_thread()
                    skip = job.abandoned  # timed out or cancelled while queued
                    if skip:
                        self._busy -= 1
                if skip:
                    continue
                result: Outcome | BaseException
                try:
                    result = runner.run_batch(job.items)
                except BaseException as exc:  # pragma: no cover - run_batch records errors
                    result = exc
                with self._lock:
                    self._busy -= 1
                self._deliver(job, result)
                if job.abandoned:
                    return  # a fresh thread has taken this one's place
        finally:
            runner.close()
            with self._lock:
                self._threads -= 1

    def _deliver(self, job: _Job, result: Outcome | BaseException) -> None:
        self._done.append((job, result))
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
            job, result = done.popleft()
            fut = job.future
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def submit(self, items: list[Any], timeout: float | None) -> Outcome:
        if self._closed:
            raise RuntimeError("executor is closed")
        loop = self._running_loop()
        job = _Job(items, loop.create_future())
        with self._lock:
            self._busy += 1
            need_thread = self._busy > self._threads
            if need_thread:
                self._threads += 1
        if need_thread:
            self._spawn()
        self._jobs.put(job)
        if timeout is None:
            try:
                return await job.future
            except asyncio.CancelledError:
                self._note_abandoned(job)
                raise
        start = time.perf_counter()
        try:
            return await asyncio.wait_for(job.future, timeout)
        except TimeoutError:
            # Python cannot stop a thread: mark the call timed out and discard
            # its late value; the next submit starts a fresh thread in its place.
            self._note_abandoned(job)
            return failed(CallTimeout(timeout), time.perf_counter() - start)
        except asyncio.CancelledError:
            self._note_abandoned(job)
            raise

    def _note_abandoned(self, job: _Job) -> None:
        with self._lock:
            job.abandoned = True
            if job.thread is not None:
                self._abandoned.add(job.thread)

    async def aclose(self, cancel: bool = False) -> None:
        self._closed = True
        for _ in range(self._threads):
            self._jobs.put(None)
        if not cancel:
            # Idle threads exit at once; waiting for them keeps a following
            # batch from starting its threads while these are still winding down.
            # Abandoned ones (a timed-out call still running) are never waited for.
            idle = [t for t in self._all if t not in self._abandoned]
            await asyncio.to_thread(_join_all, idle)


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


def _default_concurrency(mode: str) -> int:
    return {
        "sequential": 1,
        "thread": 32,
        "async": 100,
        "process": os.cpu_count() or 2,
    }[mode]


def resolve_mode(mode: str, fn: Callable[..., Any]) -> str:
    """Check ``mode`` and resolve ``"auto"``: coroutine functions to async, others to thread."""
    if mode not in MODES:
        import difflib

        close = difflib.get_close_matches(str(mode), MODES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"mode {mode!r} is not known; expected one of: {', '.join(MODES)}{hint}"
        )
    if mode == "auto":
        return "async" if is_async_callable(fn) else "thread"
    return mode


def resolve_concurrency(concurrency: int | None, mode: str) -> int:
    """The number of calls that may run at once, checked."""
    if concurrency is None:
        return _default_concurrency(mode)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an int >= 1 (got concurrency={concurrency!r})")
    if mode == "sequential":
        return 1
    return concurrency


def create_executor(mode: str, fn: Callable[..., Any], concurrency: int) -> Executor:
    """The one place that maps a (resolved) mode to its executor."""
    if mode == "sequential":
        return SequentialExecutor(fn)
    if mode == "thread":
        return ThreadExecutor(fn, concurrency)
    if mode == "async":
        # A sync function in async mode runs in the thread pool, off the loop.
        if is_async_callable(fn):
            return AsyncExecutor(fn)
        return ThreadExecutor(fn, concurrency)
    if mode == "process":
        from fanout._process import ProcessExecutor

        return ProcessExecutor(fn, concurrency)
    raise ConfigError(f"mode {mode!r} is not known")  # resolve_mode checked it already
