"""Process mode: a pool of worker processes that survives its workers dying.

Not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies it
fails every pending future with ``BrokenProcessPool``, and it cannot kill the
one worker whose call timed out. Here each worker process is owned by one
thread that sends it a batch and waits for the answer; on a death, or a kill
because the call was cancelled (its deadline passed), it replaces just that process.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator
from multiprocessing.connection import Connection
from typing import Any

from fanout._errors import (
    ConfigError,
    FanoutError,
    NotPicklableError,
    WorkerCrashed,
)
from fanout.executors import _worker
from fanout.executors._base import Executor
from fanout.executors._calls import Outcome, failed

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_KILL_GRACE = 1.0  # seconds a worker gets to exit on SIGTERM before SIGKILL

_context_lock = threading.Lock()
_context: Any = None


def _mp_context() -> Any:
    # forkserver: safe to use from a process that runs threads (our event loop
    # thread), and the server forks workers quickly with fanout and the main
    # script already imported.
    global _context
    with _context_lock:
        if _context is None:
            ctx: Any
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["fanout.executors._worker", "__main__"])
                if sys.version_info < (3, 13):
                    _start_forkserver_with_main()
            else:
                ctx = multiprocessing.get_context("spawn")
            _context = ctx
        return _context


def _start_forkserver_with_main() -> None:
    """Start the fork server with the main script imported once, there.

    Before 3.13 the fork server never receives the main script's path
    (CPython gh-126631), so '__main__' in the preload list is ignored and
    every worker re-runs the script as ``__mp_main__``: 10-50 ms per worker.
    This passes the path the way 3.13 does.
    """
    from multiprocessing import forkserver, spawn

    prepare = spawn.get_preparation_data

    def with_main_path(name: str) -> dict[str, Any]:
        data: dict[str, Any] = prepare(name)
        if "init_main_from_path" in data:
            data["main_path"] = data["init_main_from_path"]
        return data

    spawn.get_preparation_data = with_main_path
    try:
        forkserver.ensure_running()
    finally:
        spawn.get_preparation_data = prepare


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


class _Job:
    """One batch handed to the pool; ``await`` it for its outcome."""

    __slots__ = ("cancelled", "ended", "executor", "future", "items", "slot")

    def __init__(
        self, executor: ProcessExecutor, items: list[Any], future: asyncio.Future[Outcome]
    ) -> None:
        self.executor = executor
        self.items = items
        self.future = future
        self.cancelled = False
        #: the slot running it, while it runs
        self.slot: _Slot | None = None
        #: set when cancelled while running: done once its worker is gone
        self.ended: asyncio.Future[None] | None = None

    def __await__(self) -> Generator[Any, None, Outcome]:
        try:
            return (yield from self.future.__await__())
        except asyncio.CancelledError:
            self.executor._kill(self)
            raise


class _Slot:
    """One thread owning one worker process at a time."""

    def __init__(self, pool: ProcessExecutor) -> None:
        self.pool = pool
        self.proc: Any = None
        self.conn: Connection | None = None

    def start_process(self) -> None:
        ctx = _mp_context()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker.main, args=(child_conn, self.pool.fn_bytes), daemon=True
        )
        try:
            proc.start()
        except (EOFError, OSError):
            # The fork server died importing the main script (see ProcessExecutor).
            raise FanoutError(
                "the process-mode fork server died while importing the main script: "
                "a script that uses process mode needs its work under an "
                "`if __name__ == '__main__':` guard"
            ) from None
        finally:
            child_conn.close()
        self.proc, self.conn = proc, parent_conn
        try:
            kind, body = pickle.loads(parent_conn.recv_bytes())
        except (EOFError, OSError):
            how = _describe_death(self.stop_process(kill=True))
            raise FanoutError(
                f"a process-mode worker died while starting ({how}), before running anything: "
                "a script that uses process mode needs its work under an "
                "`if __name__ == '__main__':` guard; see the worker's error above"
            ) from None
        if kind == "init_error":
            self.stop_process(kill=True)
            raise ConfigError(
                f"process mode could not load {self.pool.where} in a worker process ({body}): "
                "define it in an importable module (scripts need an "
                "`if __name__ == '__main__':` guard), or use mode='thread'"
            )

    def stop_process(self, kill: bool) -> int | None:
        proc, conn = self.proc, self.conn
        self.proc = self.conn = None
        if proc is None:
            return None
        if kill and proc.is_alive():
            proc.terminate()
            proc.join(_KILL_GRACE)
            if proc.is_alive():
                proc.kill()
        if conn is not None:
            conn.close()
        proc.join(_KILL_GRACE if not kill else None)
        if proc.is_alive():
            proc.kill()
            proc.join()
        code: int | None = proc.exitcode
        proc.close()
        return code

    def serve(self) -> None:
        jobs = self.pool.jobs
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                with self.pool.lock:
                    if job.cancelled:
                        continue
                    job.slot = self
                try:
                    result: Outcome | BaseException = self.run(job.items, job)
                except BaseException as exc:
                    result = exc
                with self.pool.lock:
                    job.slot = None
                self.pool.deliver(job, result)
        finally:
            self.stop_process(kill=self.pool.cancelling)

    def run(self, items: list[Any], job: _Job) -> Outcome:
        try:
            payload = pickle.dumps(items, _PROTOCOL)
        except Exception:
            return self._run_picklable_only(items, job)
        if self.proc is None:
            self.start_process()
        conn = self.conn
        assert conn is not None
        start = time.perf_counter()
        try:
            conn.send_bytes(payload)
            _, body = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return self._died(items, job, time.perf_counter() - start)
        outcome: Outcome = body
        return outcome

    def _died(self, items: list[Any], job: _Job, elapsed: float) -> Outcome:
        if self.pool.cancelling:
            raise asyncio.CancelledError
        exitcode = self.stop_process(kill=True)
        if job.cancelled:  # killed on purpose: nobody waits for this outcome
            return failed(asyncio.CancelledError(), elapsed)
        if len(items) == 1:
            how = _describe_death(exitcode)
            return failed(WorkerCrashed(
                f"the worker process running this item died ({how}); the pool replaced it",
                exitcode,
            ), elapsed)
        # A batch of tiny calls: run each alone so only the culprit fails.
        return _concat([self.run([item], job) for item in items])

    def _run_picklable_only(self, items: list[Any], job: _Job) -> Outcome:
        parts: list[Outcome] = []
        for item in items:
            try:
                pickle.dumps(item, _PROTOCOL)
            except Exception as exc:
                parts.append(failed(NotPicklableError(
                    f"process mode needs picklable items, but {type(item).__qualname__} "
                    f"{_short(item)} is not ({exc}): pass plain data, or use mode='thread'"
                )))
            else:
                parts.append(self.run([item], job))
        return _concat(parts)


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ProcessExecutor(Executor):
    """Each call runs in a worker process; tiny calls travel in batches.

    A call stopped by its deadline (or by the run's end) has its worker process
    killed (SIGTERM, then SIGKILL after a grace period) and replaced.
    """

    mode = "process"
    stops = "kill"
    batch_target = 0.02
    max_batch = 8192
    calls_run_here = False

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.cancelling = False
        self._slots: list[_Slot] = []
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.size = 1
        self.where = ""
        self.fn_bytes = b""

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # A worker or the fork server is importing a main script that starts
            # process mode at import time (no __main__ guard): starting more
            # processes here would recurse. Exit quietly; the parent reports it.
            raise SystemExit(1)
        self.where = _where(fn)
        try:
            self.fn_bytes = pickle.dumps(fn, _PROTOCOL)
        except Exception as exc:
            raise NotPicklableError(
                f"process mode needs a picklable function, but {self.where} is not "
                f"({type(exc).__name__}: {exc}): define it at module level, or use mode='thread'"
            ) from None
        self.size = concurrency

    def check_item(self, item: Any) -> None:
        """Raise NotPicklableError before anything runs if ``item`` can't go to a worker."""
        try:
            pickle.dumps(item, _PROTOCOL)
        except Exception as exc:
            raise NotPicklableError(
                f"process mode needs picklable items, but the first item "
                f"{_short(item)} is not ({type(exc).__name__}: {exc}): pass plain data, "
                "or use mode='thread'"
            ) from None

    def deliver(self, job: _Job, result: Outcome | BaseException) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(_settle, job, result)
        except RuntimeError:  # the loop is gone: nobody waits for this result
            pass

    def submit(self, items: list[Any]) -> _Job:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if len(self._slots) < self.size:
            slot = _Slot(self)
            thread = threading.Thread(target=slot.serve, name="fanout-process-slot", daemon=True)
            self._slots.append(slot)
            self._threads.append(thread)
            thread.start()
        job = _Job(self, items, loop.create_future())
        self.jobs.put(job)
        return job

    def stopped(self, call: Any) -> asyncio.Future[None] | None:
        ended: asyncio.Future[None] | None = getattr(call, "ended", None)
        return ended

    def _kill(self, job: _Job) -> None:
        """Stop a cancelled job: never start it, or kill the worker running it."""
        with self.lock:
            job.cancelled = True
            slot = job.slot
            proc = slot.proc if slot is not None else None
            if slot is not None and self._loop is not None:
                job.ended = self._loop.create_future()  # settled by deliver, on this loop
        if proc is not None and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            assert slot is not None
            threading.Timer(_KILL_GRACE, _kill_hard, (slot, proc)).start()

    async def aclose(self, cancel: bool = False) -> None:
        self.cancelling = cancel
        for _ in self._slots:
            self.jobs.put(None)
        if cancel:
            # Unblock slot threads waiting on their worker: kill the workers now.
            for slot in self._slots:
                proc = slot.proc
                if proc is not None and proc.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(_join_all, list(self._threads))


def _kill_hard(slot: _Slot, proc: Any) -> None:
    """SIGKILL a worker that ignored SIGTERM. Once the slot has let go of ``proc``
    it reaps it itself (SIGKILL after the same grace), so its pid is never reused here."""
    if slot.proc is proc and proc.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


def _settle(job: _Job, result: Outcome | BaseException) -> None:
    if job.ended is not None and not job.ended.done():
        job.ended.set_result(None)
    fut = job.future
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
