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

import array
import asyncio
import hashlib
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fanout._errors import CallTimeout, ConfigError, FanoutError, NotPicklableError, WorkerCrashed
from fanout.executors import _worker
from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, failed
from fanout.executors._pool import POOL, Worker

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


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    if code is not None:
        return f"{name} in {os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return name


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _concat(parts: list[Outcome]) -> Outcome:
    values: list[Any] = []
    elapsed = array.array("d")
    errors: dict[int, BaseException] = {}
    for part_values, part_elapsed, part_errors in parts:
        if part_errors:
            for i, exc in part_errors.items():
                errors[len(values) + i] = exc
        values.extend(part_values)
        elapsed.extend(part_elapsed)
    return values, elapsed, errors or None


def prepare(fn: Callable[..., Any], concurrency: int) -> None:
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


class ProcessExecutor(Executor):
    """Each call runs in a worker process; tiny calls travel in batches."""

    batch_target = 0.02
    max_batch = 8192
    calls_run_here = False
    #: how a cancelled call is stopped: its worker is killed and replaced
    stops = "kill"

    def __init__(self, fn: Callable[..., Any], size: int) -> None:
        # ``size`` (the run's concurrency) needs nothing here: the run never has
        # more batches out at once, and the shared pool grows to what is asked.
        self.where = _where(fn)
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

    def check_item(self, item: Any) -> None:
        """Raise NotPicklableError before anything runs if ``item`` can't go to a worker."""
        try:
            _dumps(item)
        except Exception as exc:
            raise NotPicklableError(
                f"process mode needs picklable items, but the first item "
                f"{_short(item)} is not ({type(exc).__name__}: {exc}): pass plain data, "
                "or use mode='thread'"
            ) from None

    async def submit(self, items: list[Any], timeout: float | None = None) -> Outcome:
        try:
            payload = _dumps(items)
        except Exception:
            return await self._picklable_only(items, timeout)
        loop = self._running_loop()
        while True:
            worker = POOL.take(self._key)
            start = time.perf_counter()
            try:
                # Set-up (a new worker starting, the function loading) is not the call's time.
                await self._killing_on_cancel(worker, self._set_up(loop, worker))
                start = time.perf_counter()
                call = self._killing_on_cancel(worker, self._run(loop, worker, payload))
                if timeout is None:
                    return await call
                try:
                    async with asyncio.timeout(timeout):
                        return await call
                except TimeoutError:
                    return failed(CallTimeout(timeout, "; its worker process was killed"),
                                  time.perf_counter() - start)
            except _Retired:
                continue
            except (EOFError, OSError):
                return await self._died(worker, items, timeout, time.perf_counter() - start)

    @staticmethod
    async def _killing_on_cancel(worker: Worker, step: Coroutine[Any, Any, T]) -> T:
        try:
            return await step
        except asyncio.CancelledError:
            POOL.kill(worker)
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

    async def _died(self, worker: Worker, items: list[Any], timeout: float | None,
                    elapsed: float) -> Outcome:
        exitcode = POOL.discard(worker)
        if len(items) == 1:
            how = _describe_death(exitcode)
            return failed(WorkerCrashed(
                f"the worker process running this item died ({how}); the pool replaced it",
                exitcode,
            ), elapsed)
        # A batch of tiny calls: run each alone so only the culprit fails.
        return _concat([await self.submit([item], timeout) for item in items])

    async def _picklable_only(self, items: list[Any], timeout: float | None) -> Outcome:
        parts: list[Outcome] = []
        for item in items:
            try:
                _dumps(item)
            except Exception as exc:
                parts.append(failed(NotPicklableError(
                    f"process mode needs picklable items, but {type(item).__qualname__} "
                    f"{_short(item)} is not ({exc}): pass plain data, or use mode='thread'"
                )))
            else:
                parts.append(await self.submit([item], timeout))
        return _concat(parts)

    async def aclose(self, cancel: bool = False) -> None:
        """Nothing to release: workers go back to the shared pool after each batch,
        and a cancelled call's worker was killed when it was cancelled."""
