"""The scheduler: every policy of a run, written once for every mode.

A fixed pool of ``concurrency`` worker coroutines pulls items from the input
lazily (backpressure: an item is taken only when a worker is free and the
window has room), hands them to the executor, and files each outcome as a
result or a retry. Retries wait on a timer, holding no worker. Results leave
through a reorder buffer (ordered) or as they finish; ``window`` bounds the
items taken but not yet handed to the consumer, so memory does not grow with
the input, and a slow consumer slows the run down instead of piling results up.

Tiny calls are batched: the executor gets several items at once when calls are
measured to be much shorter than the hand-off cost (never with a timeout or a
rate limit, which are per call).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from typing import Any

from fanout._gc import KeptResults, build_many
from fanout._limits import AdaptiveCap, RateLimiter
from fanout._progress import Progress
from fanout._result import Result
from fanout._retry import RetryPolicy, is_throttle
from fanout.executors import Executor, create_executor
from fanout.executors._calls import Outcome


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides the function and the items; plain data."""

    mode: str
    concurrency: int
    ordered: bool = True
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate: float | None = None
    progress: bool = False
    errors: str = "collect"
    description: str = "fanout"
    keep: bool = False  # the consumer keeps every result (map)


# A job is a run of consecutive input items: (first index, items, attempts so far).
_Job = tuple[int, list[Any], int]


class Run:
    """One batch being run. ``results()`` drives it; ``finished()`` salvages on a stop."""

    def __init__(
        self,
        fn: Callable[..., Any],
        items: Any,
        config: RunConfig,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        self._loop = asyncio.get_running_loop()  # a Run lives on the loop it is made on
        self._stop_event = stop
        self._stop_requested = False
        self.executor: Executor = create_executor(config.mode, fn, config.concurrency)
        self._length: int | None = None
        with contextlib.suppress(TypeError):
            self._length = len(items)
        self._async_items = hasattr(items, "__aiter__")
        self._iter: Any = items.__aiter__() if self._async_items else iter(items)
        self._pull_lock = asyncio.Lock() if self._async_items else None
        self._taken = 0
        self._exhausted = False
        self._retry_ready: collections.deque[_Job] = collections.deque()
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._retries_pending = 0
        # Finished runs of results waiting for earlier ones, by first index.
        self._buffer: dict[int, list[Result[Any]]] = {}
        self._next_out = 0
        self._ready: list[Result[Any]] = []
        self._delivered = 0
        self._failure: BaseException | None = None
        self._stopping = False
        self._worker_waiters: list[asyncio.Future[None]] = []
        self._consumer_waiter: asyncio.Future[None] | None = None
        self._limiter = RateLimiter(config.rate)
        self._cap = AdaptiveCap(config.concurrency)
        self._throttled = False
        executor_ = self.executor
        self._batch_target = executor_.batch_target
        self._max_batch = 1 if (config.timeout is not None or config.rate) else executor_.max_batch
        self._batch = 1
        self._per_item = 0.0
        batching = min(2 * config.concurrency * self._max_batch, 65536)
        self._window = max(1024, 8 * config.concurrency) + batching
        self._first: list[Any] = []
        self.done = 0
        self.failed = 0
        self.retried = 0
        self._progress: Progress | None = None
        self._kept = KeptResults()

    # ----------------------------------------------------------- the consumer
    async def results(self) -> AsyncGenerator[list[Result[Any]], None]:
        """Batches of results, in input order or as they finish."""
        loop = self._loop
        workers: list[asyncio.Task[None]] = []
        clean = False
        try:
            if self.config.keep and not self.executor.calls_run_here:
                self._kept.start()
            await self._check_first_item()
            if self.config.progress:
                self._progress = Progress(self, self.config.description)
                self._progress.start()
            workers = [
                loop.create_task(self._worker()) for _ in range(self.config.concurrency)
            ]
            if self._stop_event is not None:
                workers.append(loop.create_task(self._watch_stop(self._stop_event)))
            while True:
                if self._failure is not None:
                    raise self._failure
                if self._stop_requested:
                    # Graceful stop: cancel what runs, hand out what finished, end.
                    self._stopping = True
                    for task in workers:
                        task.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                    rest = self.finished()
                    if rest:
                        yield rest
                    return
                if self._ready:
                    batch, self._ready = self._ready, []
                    self._delivered += len(batch)
                    if self._worker_waiters:
                        self._wake_workers()
                    yield batch
                    continue
                if self._exhausted and self._delivered == self._taken:
                    break
                self._consumer_waiter = loop.create_future()
                await self._consumer_waiter
                self._consumer_waiter = None
            clean = True
        finally:
            self._stopping = True
            for timer in self._retry_timers:
                timer.cancel()
            for task in workers:
                task.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)
            await self.executor.aclose(cancel=not clean)
            self._kept.stop()
            if self._progress is not None:
                self._progress.stop()

    async def _watch_stop(self, event: asyncio.Event) -> None:
        await event.wait()
        self._stop_requested = True
        self._wake_consumer()

    def finished(self) -> list[Result[Any]]:
        """Results that finished but were not yet handed out (after a stop), by index."""
        out = self._ready
        for chunk in self._buffer.values():
            out.extend(chunk)
        self._ready = []
        self._buffer = {}
        out.sort(key=lambda r: r.index)
        return out

    @property
    def total(self) -> int | None:
        """How many items the input holds, once known (for the progress bar)."""
        if self._length is not None:
            return self._length
        return self._taken if self._exhausted else None

    # ------------------------------------------------------------- the input
    async def _check_first_item(self) -> None:
        """Let the executor refuse the first item before anything runs (process
        mode: not picklable); then it goes back in front of the others."""
        if self._pull_lock is None:
            first = list(islice(self._iter, 1))
            if first:
                self.executor.check_item(first[0])
                self._iter = chain(first, self._iter)
        else:
            self._first = await self._apull(1)
            if self._first:
                self.executor.check_item(self._first[0])

    async def _apull(self, n: int) -> list[Any]:
        """Up to ``n`` items of an async iterable; fewer once it is exhausted."""
        assert self._pull_lock is not None
        taken, self._first = self._first[:n], self._first[n:]
        async with self._pull_lock:
            while len(taken) < n and not self._exhausted:
                try:
                    taken.append(await self._iter.__anext__())
                except StopAsyncIteration:
                    self._exhaust()
        return taken

    def _exhaust(self) -> None:
        self._exhausted = True
        self._wake_workers()
        self._wake_consumer()

    # ----------------------------------------------------------- the workers
    def _wanted(self) -> int:
        """How many items the next job may take: 0 while the window is full."""
        room = self._window - (self._taken - self._delivered)
        if room <= 0:
            return 0
        return min(self._batch if not self._limiter.active else 1, room)

    def _new_job(self, items: list[Any]) -> _Job:
        first = self._taken
        self._taken += len(items)
        return (first, items, 0)

    def _job_at_hand(self) -> _Job | None:
        """The next job if it can be had without waiting (the common case, and no
        coroutine to create): a retry that is due, or items of a plain iterable."""
        if self._stopping or self._failure is not None:
            return None
        if self._retry_ready:
            return self._retry_ready.popleft()
        if self._exhausted or self._pull_lock is not None:
            return None
        n = self._wanted()
        if n == 0:
            return None
        items = list(islice(self._iter, n))
        if len(items) < n:
            self._exhaust()
            if not items:
                return None
        return self._new_job(items)

    async def _next_job(self) -> _Job | None:
        """The next job when none was at hand: wait for room in the window, a due
        retry or the next items of an async iterable; None when the run is over."""
        while True:
            if self._stopping or self._failure is not None:
                return None
            if not self._exhausted and self._pull_lock is not None and (n := self._wanted()):
                items = await self._apull(n)
                if items:
                    return self._new_job(items)
            elif self._exhausted and self._retries_pending == 0:
                return None
            else:
                waiter = self._loop.create_future()
                self._worker_waiters.append(waiter)
                await waiter
            job = self._job_at_hand()
            if job is not None:
                return job

    def _wake_workers(self) -> None:
        waiters, self._worker_waiters = self._worker_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _worker(self) -> None:
        try:
            executor = self.executor
            limiter = self._limiter
            cap = self._cap
            timeout = self.config.timeout
            while True:
                job = self._job_at_hand() or await self._next_job()
                if job is None:
                    return
                if not cap.try_start():
                    await cap.wait_can_start()
                try:
                    if limiter.active:
                        await limiter.acquire()
                    outcomes = await executor.submit(job[1], timeout)
                finally:
                    cap.notify_finished()
                self._file(job, outcomes)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # Not a call's failure (those are outcomes): the executor or the
            # input itself broke. Stop the run and raise it to the caller.
            if self._failure is None:
                self._failure = exc
            self._wake_consumer()

    def _file(self, job: _Job, outcome: Outcome) -> None:
        first, items, attempts_before = job
        values, elapsed, errors = outcome
        attempts = attempts_before + 1
        n = len(items)
        if attempts == 1 and self._max_batch > 1:
            self._tune_batch(elapsed)
        if not errors:
            results = _results(first, n, items, values, attempts, elapsed, self._kept.active)
            self.done += n
            self._recover(n)
            self._emit(first, results)
            return
        for i in range(n):
            index, item = first + i, items[i]
            error = errors.get(i)
            if error is None:
                result: Result[Any] = Result(index, item, values[i], None, attempts, elapsed[i])
                self._recover(1)
            else:
                delay, error = self.config.retry.decide(error, attempts)
                if delay is not None and not self._stopping:
                    if is_throttle(error):
                        self._throttled = True
                        self._limiter.throttle(delay)
                        self._cap.throttle()
                    self._schedule_retry((index, [item], attempts), delay)
                    continue
                result = Result(index, item, None, error, attempts, elapsed[i])
                self.failed += 1
                if self.config.errors == "raise" and self._failure is None:
                    self._failure = error
            self.done += 1
            self._emit(index, [result])

    def _recover(self, successes: int) -> None:
        """After a throttle, each success narrows the pacing and widens the cap again."""
        if self._throttled:
            for _ in range(successes):
                self._limiter.notify_success()
                self._cap.notify_success()

    def _tune_batch(self, elapsed: Sequence[float]) -> None:
        sample = elapsed[:: len(elapsed) // 64 + 1]  # summing 8,192 floats costs a batch 5%
        per_item = sum(sample) / len(sample)
        old = self._per_item
        self._per_item = per_item if old == 0.0 else 0.7 * old + 0.3 * per_item
        want = int(self._batch_target / max(self._per_item, 1e-9))
        fair = max(1, (self._window // 2) // self.config.concurrency)
        want = max(1, min(want, self._max_batch, fair))
        self._batch = min(want, self._batch * 2) if want > self._batch else want

    def _schedule_retry(self, job: _Job, delay: float) -> None:
        self._retries_pending += 1
        self.retried += 1
        timer: asyncio.TimerHandle

        def due() -> None:
            self._retry_timers.discard(timer)
            self._retries_pending -= 1
            self._retry_ready.append(job)
            self._wake_workers()

        timer = self._loop.call_later(delay, due)
        self._retry_timers.add(timer)

    # ------------------------------------------------------------ the output
    def _emit(self, first: int, results: list[Result[Any]]) -> None:
        if not self.config.ordered:
            self._ready.extend(results)
        elif first == self._next_out:
            self._ready.extend(results)
            nxt = first + len(results)
            buffer = self._buffer
            while nxt in buffer:
                chunk = buffer.pop(nxt)
                self._ready.extend(chunk)
                nxt += len(chunk)
            self._next_out = nxt
        else:
            self._buffer[first] = results
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        waiter = self._consumer_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _results(
    first: int, n: int, items: list[Any], values: list[Any], attempts: int,
    elapsed: Sequence[float], freeze: bool,
) -> list[Result[Any]]:
    """One batch of Results, made with at most one garbage collection (see _gc)."""
    if n == 1:
        return [Result(first, items[0], values[0], None, attempts, elapsed[0])]
    return build_many(
        lambda: list(map(Result, range(first, first + n), items, values,
                         repeat(None, n), repeat(attempts, n), elapsed)),
        n, freeze)
