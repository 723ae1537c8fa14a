"""Thread mode: a pool of daemon threads fed from one queue."""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from fanout._errors import CallTimeout
from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, SyncRunner, failed


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
