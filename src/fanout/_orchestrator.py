"""The scheduler: every policy of a run, written once for every mode.

A fixed pool of ``concurrency`` worker coroutines — one per slot — pulls jobs
(runs of consecutive items, see ``_batching``) and hands them to the executor.
Its parts, each a small unit of its own:

    _input.Input         the items, pulled lazily (backpressure: only when a slot is free
                         and the window has room)
    _flow.FlowControl    the gate of every start: concurrency cap, rate, reaction to overload
    _deadlines.Deadlines per-call deadlines, one timer; the executor stops a late call as
                         it declares (cancel, kill, or abandon, holding the slot until it ends)
    _retry               the retry policy, and retries waiting on timers (holding no slot)
    _reorder.Reorder     results in input order through a bounded buffer, or as they finish
    _batching.BatchSizer how many tiny calls travel as one job

``window`` bounds the items taken but not yet handed to the consumer, so memory
does not grow with the input and a slow consumer slows the run down instead of
piling results up.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from itertools import repeat
from typing import Any

from fanout._auto import Choice, Facts, Probe, choose, early_choice_possible
from fanout._batching import BatchSizer
from fanout._classify import CPU_BOUND_SHARE, TINY_CALL_S, cores, gil_enabled
from fanout._config import RunConfig
from fanout._deadlines import Deadlines
from fanout._errors import CallTimeout, ConfigError, SlotsExhausted
from fanout._flow import Flow
from fanout._gc import KeptResults, build_many
from fanout._info import RunInfo, started
from fanout._input import Input
from fanout._progress import Progress, want_progress
from fanout._reorder import Reorder
from fanout._result import Result
from fanout._retry import RetryScheduler
from fanout.executors import Executor, new_executor
from fanout.executors._calls import Outcome, failed, is_async_callable

logger = logging.getLogger("fanout")

# A job is a run of consecutive input items: (first index, items, attempts so far).
_Job = tuple[int, list[Any], int]
#: the longest a running batch holds the results of its calls that have finished (s)
HOLD_S = 0.25

#: how often a probe that has not read clearly yet is looked at again
EARLY_TICK_S = 0.001

_STOPPED = {
    "cancel": "",
    "kill": "; its worker process was killed",
    "abandon": "; it could not be stopped: it runs on until it ends, its result discarded",
}


class Run:
    """One batch being run. ``results()`` drives it; ``finished()`` salvages on a stop."""

    def __init__(
        self,
        fn: Callable[..., Any],
        items: Any,
        config: RunConfig,
        stop: asyncio.Event | None = None,
        *,
        api: str = "map",
        executor: Executor | None = None,
    ) -> None:
        """``executor``: the one to use, already made (else the config's, or a new one
        of its mode)."""
        self.config = config
        self.api = api
        self._fn = fn
        self._loop = asyncio.get_running_loop()  # a Run lives on the loop it is made on
        self._stop_event = stop
        self._stop_requested = False
        #: the mode the calls run in, and why (auto: what it chose, once it has)
        self.mode = config.mode
        self.mode_reason = config.mode_reason
        slots = config.concurrency
        self._probe: Probe | None = None
        self._process_slots = 0
        if config.auto:
            self._process_slots = (config.concurrency_given
                                   or new_executor("process").default_concurrency())
            slots = max(slots, self._process_slots)
        self._flow = Flow(
            concurrency=slots, rate=config.rate, auto=config.auto_concurrency,
            budget=config.budget, cost=config.cost, max_pause=config.retry.max_retry_after,
            server_limits=config.server_limits, loop=self._loop)
        if config.auto:
            # measure the first call, alone, on a thread; then choose (see _auto)
            self._probe = Probe(fn)
            executor = new_executor("thread")
            executor.prepare(self._for(executor, self._probe), config.concurrency,
                             config.timeout)
        else:
            executor = executor or config.executor or new_executor(config.mode)
            executor.prepare(self._for(executor, fn), config.concurrency, config.timeout)
        self.executor: Executor = executor
        self._executors = [executor]
        self._first_item: tuple[Any] | tuple[()] = ()
        #: worker coroutines (one per slot), and how many of them may take jobs
        self._slots = slots
        self._open = 1 if config.auto else slots
        self._opened: asyncio.Future[None] | None = None
        self._auto_timer: asyncio.TimerHandle | None = None
        self._input = Input(items)
        self._reorder = Reorder(config.ordered)
        self._retries: RetryScheduler[_Job] = RetryScheduler(self._loop, self._wake_workers)
        self._deadlines = Deadlines(self._loop)
        self._window = 0
        self._sizer: BatchSizer | None = None
        self._tune_for(executor, config.concurrency)
        self._delivered = 0
        self._failure: BaseException | None = None
        self._stopping = False
        self._worker_waiters: list[asyncio.Future[None]] = []
        self._consumer_waiter: asyncio.Future[None] | None = None
        self._starve_timer: asyncio.TimerHandle | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._first_failure: Result[Any] | None = None
        self._kept = KeptResults()
        #: auto chose processes for a run that keeps its Results: keep them out of the
        #: collector's way as soon as the probe's threads are gone
        self._keep_later = False
        self._retiring: asyncio.Task[None] | None = None
        self._progress: Progress | None = None
        #: items finished (successes and final failures)
        self.done = 0
        #: items that ended in failure
        self.failed = 0
        #: retries scheduled
        self.retried = 0
        #: calls past their deadline that could not be stopped and still hold a slot
        self.stuck = 0
        self.info = RunInfo(api, config.description, self)
        started(self.info)

    def _for(self, executor: Executor, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` as ``executor`` is to run it (within the flow controller's ticket when
        a cost budget needs ``fanout.charge`` from inside calls)."""
        return self._flow.wrap(fn, is_async=is_async_callable(fn),
                               runs_here=executor.calls_run_here)

    def _tune_for(self, executor: Executor, concurrency: int) -> None:
        """Batching and the window, for calls running on ``executor``: never with a
        per-call timeout, a rate, a budget or a concurrency found by latency, which
        all act per call."""
        config = self.config
        batching = (config.timeout is None and not config.rate and config.budget is None
                    and not config.auto_concurrency and executor.max_batch > 1)
        max_batch = executor.max_batch if batching else 1
        self._window = max(self._window, max(1024, 8 * concurrency)
                           + min(2 * concurrency * max_batch, 65536))
        self._sizer = BatchSizer(executor.batch_target, max_batch, self._window,
                                 concurrency) if batching else None

    @property
    def concurrency(self) -> int:
        """Calls allowed at once now: the slots open, within the flow control's limit."""
        return min(self._open, self._flow.limit)

    @property
    def flow(self) -> dict[str, Any]:
        """The flow controller's numbers now (see ``fanout._flow.Flow.state``)."""
        return self._flow.state()

    @property
    def total(self) -> int | None:
        """How many items the input holds, once known (for the progress bar)."""
        return self._input.total

    def details(self) -> str:
        """What the run is doing, in a few words (the progress display): the mode
        auto chose, and what limits the run now: the concurrency, the start rate,
        waits for the server, overload answers; then the caller's ``progress_details``."""
        flow = self._flow.details()
        extra = self.config.progress_details
        if extra is not None:
            flow = " · ".join(part for part in (flow, str(extra())) if part)
        if not self.config.auto:
            return flow
        mode = "auto: measuring" if self._probe is not None else f"auto: {self.mode}"
        return f"{mode} · {flow}" if flow else mode

    # ----------------------------------------------------------- the consumer
    async def results(self) -> AsyncGenerator[list[Result[Any]], None]:
        """Batches of results, in input order or as they finish."""
        loop = self._loop
        workers: list[asyncio.Task[None]] = []
        clean = False
        try:
            if self.config.keep and not self.executor.calls_run_here:
                self._kept.start()
            first = self._first_item = await self._input.peek()
            if first:
                self.executor.check_item(first[0])
            if want_progress(self.config.progress):
                self._progress = Progress(self, self.config.description,
                                          interval=self.config.progress_interval)
                self._progress.start()
            workers = [loop.create_task(self._worker(i)) for i in range(self._slots)]
            if self._probe is not None:
                self._auto_timer = loop.call_later(EARLY_TICK_S, self._auto_tick)
            if self._stop_event is not None:
                workers.append(loop.create_task(self._watch_stop(self._stop_event)))
            reorder = self._reorder
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
                if reorder.ready:
                    batch = reorder.take()
                    self._delivered += len(batch)
                    if self._worker_waiters:
                        self._wake_workers()
                    yield batch
                    continue
                if self._input.exhausted and self._delivered == self._input.taken:
                    break
                self._consumer_waiter = loop.create_future()
                await self._consumer_waiter
                self._consumer_waiter = None
            clean = True
        finally:
            self._stopping = True
            self._retries.cancel()
            self._deadlines.close()
            if self._starve_timer is not None:
                self._starve_timer.cancel()
            if self._auto_timer is not None:
                self._auto_timer.cancel()
            if self._reaper is not None:
                workers.append(self._reaper)
            if self._retiring is not None:
                workers.append(self._retiring)
            for task in workers:
                task.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)
            await self._input.aclose()
            for executor in self._executors:
                await executor.aclose(cancel=not clean)
            self._kept.stop()
            if self._progress is not None:
                self._progress.stop()
            self._warn_failures()
            self.info.end()

    async def _watch_stop(self, event: asyncio.Event) -> None:
        await event.wait()
        self._stop_requested = True
        self._wake_consumer()

    def finished(self) -> list[Result[Any]]:
        """Results that finished but were not yet handed out (after a stop), by index."""
        return self._reorder.salvage()

    def _warn_failures(self) -> None:
        """Failures are data, but never silent: one WARNING when a run had some."""
        first = self._first_failure
        if first is None or self.config.errors != "collect":
            return
        error = first.error
        logger.warning(
            "fanout.%s(%s): %d of %d items failed; the first, item %d: %s: %s",
            self.api, self.config.description, self.failed, self.done, first.index,
            type(error).__name__, error,
        )

    # ----------------------------------------------------------- the workers
    def _wanted(self) -> int:
        """How many items the next job may take: 0 while the window is full."""
        room = self._window - (self._input.taken - self._delivered)
        if room <= 0:
            return 0
        return min(self._sizer.size, room) if self._sizer is not None else 1

    def _job_now(self) -> _Job | None:
        """The next job if it can be had without waiting (the common case, and no
        coroutine to create): a retry that is due, or items of a plain iterable."""
        if self._stopping or self._failure is not None:
            return None
        job = self._retries.pop()
        if job is not None:
            return job
        n = self._wanted()
        if n == 0:
            return None
        inp = self._input
        if inp.exhausted or inp.is_async:
            return None
        taken = inp.take_now(n)
        if inp.exhausted:  # just now: this take reached the end
            self._on_exhausted()
        return (taken[0], taken[1], 0) if taken is not None else None

    async def _next_job(self) -> _Job | None:
        """The next job when none was at hand: wait for room in the window, a due
        retry or the next items of an async iterable; None when the run is over."""
        inp = self._input
        while True:
            if self._stopping or self._failure is not None:
                return None
            if inp.is_async and not inp.exhausted and (n := self._wanted()):
                first, items = await inp.take(n)
                if inp.exhausted:
                    self._on_exhausted()
                if items:
                    return (first, items, 0)
            elif inp.exhausted and not self._retries.waiting and not self._retries.due:
                return None
            else:
                waiter = self._loop.create_future()
                self._worker_waiters.append(waiter)
                await waiter
            job = self._job_now()
            if job is not None:
                return job

    def _on_exhausted(self) -> None:
        self._wake_workers()
        self._wake_consumer()

    def _wake_workers(self) -> None:
        waiters, self._worker_waiters = self._worker_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _worker(self, index: int) -> None:
        try:
            flow = self._flow
            clock = self._loop.time
            timeout = self.config.timeout
            task = asyncio.current_task()
            assert task is not None
            while True:
                if index >= self._open:  # a slot kept closed (auto, while it measures)
                    await self._slot_opens()
                    continue
                job = self._job_now() or await self._next_job()
                if job is None:
                    return
                if not flow.try_start(job[1]):
                    await flow.start(job[1])
                started = clock()
                if timeout is not None:
                    await self._run_timed(job, started, timeout, task)
                    continue
                call = self.executor.submit(job[1])
                early = _FileEarly(self, job, call) if len(job[1]) > 1 else None
                try:
                    outcome = await call
                except BaseException:
                    flow.release()
                    raise
                finally:
                    if early is not None:
                        early.cancel()
                flow.observe(started, outcome)
                flow.release()
                if early is not None and early.filed:
                    job, outcome = early.rest(outcome)
                self._file(job, outcome)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # Not a call's failure (those are outcomes): the executor or the
            # input itself broke. Stop the run and raise it to the caller.
            if self._failure is None:
                self._failure = exc
            self._wake_consumer()

    async def _slot_opens(self) -> None:
        if self._opened is None:
            self._opened = self._loop.create_future()
        await self._opened

    def _open_slots(self, n: int) -> None:
        self._open = n
        opened, self._opened = self._opened, None
        if opened is not None and not opened.done():
            opened.set_result(None)

    # ------------------------------------------------------------- auto mode
    def _auto_tick(self) -> None:
        self._auto_timer = None
        if self._probe is not None and not self._auto_choose():
            self._auto_timer = self._loop.call_later(EARLY_TICK_S, self._auto_tick)

    def _auto_choose(self) -> bool:
        """Choose the mode once the probe reads clearly; True once chosen."""
        probe = self._probe
        if probe is None:
            return True
        reading = probe.reading()
        if reading is None or not early_choice_possible(reading):
            return False
        process: Executor | None = None
        refused: str | None = None
        startup = 0.0
        item_bytes: int | None = None
        if reading.share >= CPU_BOUND_SHARE:
            process = new_executor("process")
            try:
                process.prepare(self._for(process, self._fn), self._process_slots,
                                self.config.timeout)
                if self._first_item:
                    process.check_item(self._first_item[0])
                    if reading.finished and reading.wall < TINY_CALL_S:  # only tiny calls ask
                        item_bytes = _pickled_size(self._first_item[0])
            except ConfigError as exc:
                process, refused = None, str(exc)
            else:
                estimate = getattr(process, "startup_estimate", None)
                startup = estimate(self._process_slots) if callable(estimate) else 0.0
        total = self._input.total
        left = total - self.done if total is not None else None
        facts = Facts(cores(), gil_enabled(), refused, left, self._process_slots, startup,
                      item_bytes)
        choice = choose(reading, facts)
        if choice is None:
            return False
        self._switch(choice, process)
        return True

    def _switch(self, choice: Choice, process: Executor | None) -> None:
        """Run every later call in ``choice.mode``: calls already running finish where
        they are; their slots, and the new mode's, open."""
        self._probe = None
        if self._auto_timer is not None:
            self._auto_timer.cancel()
            self._auto_timer = None
        if choice.mode == "process" and process is not None:
            executor, concurrency = process, self._process_slots
            # The probe's threads leave once their calls end; then no thread runs the
            # program's code here and the collector may be kept off the Results (_gc).
            self._retiring = self._loop.create_task(self.executor.aclose(cancel=True))
            self._keep_later = self.config.keep
        else:
            executor, concurrency = new_executor("thread"), self.config.concurrency
            executor.prepare(self._for(executor, self._fn), concurrency, self.config.timeout)
        self.executor = executor
        self._executors.append(executor)
        self.mode, self.mode_reason = choice.mode, choice.reason
        self._tune_for(executor, concurrency)
        self._open_slots(concurrency)
        logger.info("fanout.%s(%s): %s", self.api, self.config.description, choice.reason)

    async def _run_timed(
        self, job: _Job, started_at: float, timeout: float, task: asyncio.Task[None]
    ) -> None:
        """One call under its deadline: past it, the awaiting task is cancelled and
        the executor stops the call as it declares; an abandoned call keeps its
        slot until it really ends."""
        executor, flow, deadlines = self.executor, self._flow, self._deadlines  # this call's
        base = task.cancelling()
        call = executor.submit(job[1])
        start = 0.0
        armed = finished = False

        def arm(_: object = None) -> None:
            nonlocal start, armed
            if not armed and not finished:
                armed = True
                start = time.perf_counter()
                deadlines.add(task, timeout)

        # An executor may say when the call really starts (after starting a worker,
        # say): its deadline counts from then.
        started: asyncio.Future[None] | None = getattr(call, "started", None)
        if started is None:
            arm()
        else:
            started.add_done_callback(arm)
        try:
            outcome = await call
        except asyncio.CancelledError:
            finished = True
            if not (armed and deadlines.remove(task)) or task.uncancel() > base:
                flow.release()
                raise  # cancelled from outside (a stop), not by the deadline
            error = CallTimeout(timeout, _STOPPED[executor.stops])
            outcome = failed(error, time.perf_counter() - start)
            flow.observe(started_at, outcome)
            self._file(job, outcome)
            ended = executor.stopped(call)
            try:
                if ended is None:
                    pass
                elif executor.stops == "abandon":
                    await self._hold(ended)
                else:
                    await ended  # a killed worker: the slot is free once it is gone
            finally:
                flow.release()
            return
        except BaseException:
            finished = True
            if armed:
                deadlines.remove(task)
            flow.release()
            raise
        finished = True
        if armed and deadlines.remove(task):  # the call swallowed our cancellation
            task.uncancel()
        flow.observe(started_at, outcome)
        flow.release()
        self._file(job, outcome)

    async def _hold(self, ended: Any) -> None:
        """Keep this slot while an abandoned call still runs. When every slot has
        been held so for longer than the timeout, the items still waiting fail
        instead of the run hanging."""
        self.stuck += 1
        if self.stuck >= self._open and self._starve_timer is None:
            assert self.config.timeout is not None
            self._starve_timer = self._loop.call_later(self.config.timeout, self._starve)
        try:
            await ended
        except asyncio.CancelledError:
            # a run that ends without the call keeps counting it: it still runs
            if not self._stopping:
                self.stuck -= 1
            raise
        else:
            self.stuck -= 1
        finally:
            if self.stuck < self._open and self._starve_timer is not None:
                self._starve_timer.cancel()
                self._starve_timer = None
                self._wake_workers()  # the reaper, if any, stops at its next job

    def _starve(self) -> None:
        self._starve_timer = None
        if self.stuck >= self._open and self._reaper is None:
            self._reaper = self._loop.create_task(self._reap())

    async def _reap(self) -> None:
        """While every slot is held by a stuck call, fail the items still waiting."""
        try:
            n = self._open
            while True:
                job = self._job_now() or await self._next_job()
                if job is None:
                    return
                if self.stuck < n:
                    self._retries.due.appendleft(job)  # a slot is free again: run it
                    self._wake_workers()
                    return
                error = SlotsExhausted(
                    f"all {n} slots are held by calls that timed out and are still running "
                    f"(timeout={self.config.timeout:g}s); this item was not started"
                )
                self._fail_unstarted(job, error)
        finally:
            self._reaper = None

    def _fail_unstarted(self, job: _Job, error: BaseException) -> None:
        first, items, attempts = job
        for i, item in enumerate(items):
            self._finish_failed(Result(first + i, item, None, error, attempts, 0.0))

    def _file(self, job: _Job, outcome: Outcome) -> None:
        if self._probe is not None:
            self._auto_choose()
        first, items, attempts_before = job
        values, elapsed, errors = outcome
        attempts = attempts_before + 1
        n = len(items)
        if attempts == 1 and self._sizer is not None:
            self._sizer.observe(elapsed)
        if self._keep_later and not self._kept.active:
            self._kept.start()
        if not errors:
            results = _results(first, n, items, values, attempts, elapsed, self._kept.active)
            self.done += n
            self._reorder.add(first, results)
            self._wake_consumer()
            return
        for i in range(n):
            index, item = first + i, items[i]
            error = errors.get(i)
            if error is None:
                self.done += 1
                self._reorder.add(index, [Result(index, item, values[i], None, attempts,
                                                 elapsed[i])])
                continue
            delay, error = self.config.retry.decide(error, attempts)
            if delay is not None and not self._stopping:
                self.retried += 1
                self._retries.schedule((index, [item], attempts), delay)
                continue
            self._finish_failed(Result(index, item, None, error, attempts, elapsed[i]))
        self._wake_consumer()

    def _finish_failed(self, result: Result[Any]) -> None:
        self.done += 1
        self.failed += 1
        if self._first_failure is None:
            self._first_failure = result
        if self.config.errors == "raise" and self._failure is None:
            self._failure = result.error
        self._reorder.add(result.index, [result])
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        waiter = self._consumer_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _FileEarly:
    """A batch still running after ``HOLD_S`` (a slow call after quick ones): every
    ``HOLD_S``, the results its calls already have are filed, so that they reach
    the consumer (and ``fanout run``'s output) without waiting for the slow one.
    For executors whose calls can say so (``partial()``, see ``Executor.submit``)."""

    __slots__ = ("_partial", "_run", "_timer", "filed", "job")

    def __init__(self, run: Run, job: _Job, call: Any) -> None:
        self._run = run
        self.job = job
        self._partial: Callable[[], Outcome] | None = getattr(call, "partial", None)
        #: how many of the batch's results are filed already
        self.filed = 0
        self._timer = (run._loop.call_later(HOLD_S, self._check)
                       if self._partial is not None else None)

    def _check(self) -> None:
        assert self._partial is not None
        first, items, attempts = self.job
        values, elapsed, errors = self._partial()
        if len(values) > self.filed:
            _, outcome = _tail(self.job, (values, elapsed, errors), self.filed)
            done = len(values)
            self._run._file((first + self.filed, items[self.filed:done], attempts), outcome)
            self.filed = done
        self._timer = self._run._loop.call_later(HOLD_S, self._check)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def rest(self, outcome: Outcome) -> tuple[_Job, Outcome]:
        """The batch's job and outcome without the results filed early."""
        return _tail(self.job, outcome, self.filed)


def _tail(job: _Job, outcome: Outcome, k: int) -> tuple[_Job, Outcome]:
    """``job`` and its ``outcome`` from the ``k``-th item on."""
    first, items, attempts = job
    values, elapsed, errors = outcome
    rest = {i - k: e for i, e in (errors or {}).items() if i >= k}
    return (first + k, items[k:], attempts), (values[k:], elapsed[k:], rest or None)


def _pickled_size(item: Any) -> int | None:
    """Bytes of ``item`` pickled (what sending it to a worker costs), or None."""
    try:
        return len(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # the process executor's own pickler may still send it
        return None


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
