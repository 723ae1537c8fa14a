"""Process mode: each batch runs in a worker process of the warm pool (see _pool).

Not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies it
fails every pending future with ``BrokenProcessPool``, and it cannot stop the
one call that must stop. Here a run borrows a worker per batch; a worker that
dies fails only its item, and a cancelled call (deadline, Ctrl-C, graceful
stop) kills exactly the worker running it; the pool replaces both.

The function is pickled once per run and sent once to each worker: by
reference when it lives in an importable module, by value (cloudpickle) when
it comes from ``__main__`` (a script, ``python -``, a notebook cell) or is a
lambda or closure. Items travel with plain pickle, and with cloudpickle when
they need it (an instance of a class defined in ``__main__``).
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from fanout._errors import ConfigError, FanoutError, NotPicklableError, WorkerCrashed
from fanout.executors import _worker
from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, concat, failed, short_repr, where
from fanout.executors._pool import POOL, Worker

#: seconds to start the worker processes of a run when none is idle (a fresh
#: interpreter each, started together; forking is much faster but not always possible)
COLD_START_S = 0.1

_PROTOCOL = pickle.HIGHEST_PROTOCOL
T = TypeVar("T")


def _dumps(value: Any) -> bytes:
    """Plain pickle (fast); cloudpickle when plain pickle fails, or refers to
    ``__main__``, which a worker never imports (a cheap, safe test: at worst a
    string that contains it goes by cloudpickle too)."""
    try:
        data = pickle.dumps(value, _PROTOCOL)
    except Exception:
        data = b"__main__"
    if b"__main__" in data:
        import cloudpickle

        data = cloudpickle.dumps(value, _PROTOCOL)
    return data


def _describe_death(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exit code {exitcode}"


def prestart(fn: Callable[..., Any], concurrency: int) -> None:
    """Call from the caller's thread before a run starts its loop thread: while
    it is the only thread, workers can be forked (a millisecond or two each,
    against 50-100 ms for a fresh interpreter). What the function needs to
    travel (cloudpickle) is loaded first, so the workers have it too."""
    try:
        _dumps(fn)
    except Exception:
        return  # the run reports it, in one line
    POOL.prestart(concurrency)


class _Retired(Exception):
    """The worker had retired (idle too long) before it saw the batch: use another."""


class _Call:
    """One batch on its way through a worker; ``await`` it for its outcome.

    ``started`` is done once the batch is handed to a ready worker: starting a
    worker and loading the function are not the call's time, so the
    orchestrator counts the call's deadline from then. ``ended`` is set when the
    call is cancelled while it runs: done once its killed worker has exited.
    """

    __slots__ = ("_coro", "ended", "started")

    def __init__(self, started: asyncio.Future[None]) -> None:
        self.started = started
        self.ended: asyncio.Future[None] | None = None
        self._coro: Coroutine[Any, Any, Outcome] | None = None

    def __await__(self) -> Generator[Any, None, Outcome]:
        assert self._coro is not None
        return (yield from self._coro.__await__())


class ProcessExecutor(Executor):
    """Each call runs in a worker process; tiny calls travel in batches."""

    mode = "process"
    batch_target = 0.02
    max_batch = 8192
    calls_run_here = False
    #: how a cancelled call is stopped: its worker is killed and replaced
    stops = "kill"

    def __init__(self) -> None:
        self.where = ""
        self._fn_message = b""
        self._key = b""
        self._loop: asyncio.AbstractEventLoop | None = None

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        # ``concurrency`` needs nothing here: the run never has more batches out at
        # once, and the shared pool grows to what is asked.
        self.where = where(fn)
        try:
            fn_bytes = _dumps(fn)
        except Exception as exc:
            raise NotPicklableError(
                f"process mode needs a picklable function, but {self.where} is not "
                f"({type(exc).__name__}: {exc}): make it use only picklable data "
                "(no locks, open files or connections), or use mode='thread'"
            ) from None
        self._fn_message = pickle.dumps((list(sys.path), fn_bytes), _PROTOCOL)
        # The same function (and sys.path) in a later run is not sent to a worker again.
        self._key = hashlib.blake2b(self._fn_message, digest_size=16).digest()

    def warm_up(self, fn: Callable[..., Any], workers: int) -> None:
        prestart(fn, workers)

    def startup_estimate(self, workers: int) -> float:
        """Seconds to get ``workers`` ready: none when that many idle ones wait."""
        return 0.0 if POOL.idle_count() >= workers else COLD_START_S

    def check_item(self, item: Any) -> None:
        """Raise NotPicklableError before anything runs if ``item`` can't go to a worker."""
        try:
            _dumps(item)
        except Exception as exc:
            raise NotPicklableError(
                f"process mode needs picklable items, but the first item "
                f"{short_repr(item)} is not ({type(exc).__name__}: {exc}): pass plain data, "
                "or use mode='thread'"
            ) from None

    def submit(self, items: list[Any]) -> _Call:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        call = _Call(loop.create_future())
        call._coro = self._batch(items, call)
        return call

    def stopped(self, call: Any) -> asyncio.Future[None] | None:
        ended: asyncio.Future[None] | None = getattr(call, "ended", None)
        return ended

    async def _batch(self, items: list[Any], call: _Call) -> Outcome:
        try:
            payload = _dumps(items)
        except Exception:
            return await self._picklable_only(items, call)
        assert self._loop is not None
        loop = self._loop
        while True:
            worker = POOL.take(self._key)
            start = time.perf_counter()
            try:
                # Set-up (a new worker starting, the function loading) is not the call's time.
                await self._killing_on_cancel(worker, self._set_up(loop, worker), call)
                start = time.perf_counter()
                if not call.started.done():
                    call.started.set_result(None)
                return await self._killing_on_cancel(
                    worker, self._run(loop, worker, payload), call)
            except _Retired:
                continue
            except (EOFError, OSError):
                return await self._died(worker, items, call, time.perf_counter() - start)

    async def _killing_on_cancel(
        self, worker: Worker, step: Coroutine[Any, Any, T], call: _Call
    ) -> T:
        try:
            return await step
        except asyncio.CancelledError:
            loop = self._loop
            assert loop is not None
            ended = call.ended = loop.create_future()

            def gone() -> None:
                if not ended.done():
                    ended.set_result(None)

            POOL.kill(worker, on_exit=lambda: _call_soon(loop, gone))
            raise

    async def _set_up(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        """Make ``worker`` ready to run this run's function."""
        if not worker.ready:
            try:
                kind, _ = await worker.recv(loop)
            except (EOFError, OSError):
                kind = -1
            if kind != _worker.READY:
                how = _describe_death(POOL.discard(worker))
                raise FanoutError(
                    f"a process-mode worker died while starting ({how}), before running "
                    "anything: see its error above"
                )
            worker.ready = True
        if worker.fn_key == self._key:
            return
        await worker.send(loop, _worker.FUNCTION, self._fn_message)
        kind, body = await worker.recv(loop)
        if kind == _worker.BYE:
            POOL.discard(worker)
            raise _Retired
        if kind != _worker.LOADED:
            worker.fn_key = None
            POOL.give_back(worker)
            raise ConfigError(
                f"process mode could not load {self.where} in a worker process "
                f"({bytes(body).decode(errors='replace')}): define it in a module the worker "
                "can import, or use mode='thread'"
            )
        worker.fn_key = self._key

    async def _run(self, loop: asyncio.AbstractEventLoop, worker: Worker,
                   payload: bytes) -> Outcome:
        await worker.send(loop, _worker.JOB, payload)
        kind, body = await worker.recv(loop)
        if kind == _worker.BYE:
            POOL.discard(worker)
            raise _Retired
        try:
            outcome: Outcome = pickle.loads(body)
        finally:
            POOL.give_back(worker)  # its answer is read: it can serve the next batch
        return outcome

    async def _died(self, worker: Worker, items: list[Any], call: _Call,
                    elapsed: float) -> Outcome:
        exitcode = POOL.discard(worker)
        if len(items) == 1:
            how = _describe_death(exitcode)
            return failed(WorkerCrashed(
                f"the worker process running this item died ({how}); the pool replaced it",
                exitcode,
            ), elapsed)
        # A batch of tiny calls: run each alone so only the culprit fails.
        return concat([await self._batch([item], call) for item in items])

    async def _picklable_only(self, items: list[Any], call: _Call) -> Outcome:
        parts: list[Outcome] = []
        for item in items:
            try:
                _dumps(item)
            except Exception as exc:
                parts.append(failed(NotPicklableError(
                    f"process mode needs picklable items, but {type(item).__qualname__} "
                    f"{short_repr(item)} is not ({exc}): pass plain data, or use mode='thread'"
                )))
            else:
                parts.append(await self._batch([item], call))
        return concat(parts)

    async def aclose(self, cancel: bool = False) -> None:
        """Nothing to release: workers go back to the shared pool after each batch,
        and a cancelled call's worker was killed when it was cancelled."""


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop has closed: nobody waits for this any more
        pass
