"""The public entry points: map, imap (sync) and amap, aimap, aimap_batches (async).

The sync API runs the orchestrator on an event loop of its own, in a thread of
its own, so it works the same from a script, a thread, or code that already
runs a loop (a Jupyter notebook), and Ctrl-C stays with the caller's thread.
Every entry point takes the same keywords, defined and checked once in
``_config`` (``Options``); each is described in ``map``'s docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from types import FrameType
from typing import Any, NoReturn, Unpack

from fanout._config import ASYNC_OPTIONS, AsyncOptions, Options, RunConfig, configure
from fanout._errors import Interrupted
from fanout._interrupt import raise_interrupted
from fanout._loop import new_event_loop
from fanout._orchestrator import Run
from fanout._result import Result, Results
from fanout.executors import Executor, new_executor


class _SyncStream:
    """Results of a run driven on a private loop thread, handed over in batches."""

    _HIGH_WATER = 65536

    def __init__(
        self, fn: Callable[..., Any], items: Iterable[Any], config: RunConfig, api: str
    ) -> None:
        self._fn = fn
        self._api = api
        self._items = items
        self._config = config
        self._channel: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._run: Run | None = None
        self._ended = False
        self._lock = threading.Lock()
        self._queued = 0
        self._resume: asyncio.Event | None = None
        self._started = threading.Event()
        self._executor: Executor | None = None
        self._startup_error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        config = self._config
        if not config.auto:
            # the executor may start workers now, while the program may run one thread
            self._executor = config.executor or new_executor(config.mode)
            workers = config.concurrency
            with contextlib.suppress(TypeError):
                workers = min(workers, len(self._items))  # type: ignore[arg-type]
            self._executor.warm_up(self._fn, max(workers, 1))
        self._thread = threading.Thread(target=self._serve, name="fanout-loop", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._startup_error is not None:
            self._ended = True
            raise self._startup_error

    def _serve(self) -> None:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(self._pump())

    async def _pump(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._resume = asyncio.Event()
        try:
            self._run = Run(self._fn, self._items, self._config, api=self._api,
                            executor=self._executor)
        except BaseException as exc:
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        channel = self._channel
        try:
            async for batch in self._run.results():
                with self._lock:
                    self._queued += len(batch)
                    full = self._queued > self._HIGH_WATER
                    if full:
                        self._resume.clear()
                channel.put(("batch", batch))
                if full:
                    await self._resume.wait()
        except asyncio.CancelledError:
            channel.put(("cancelled", None))
        except BaseException as exc:
            channel.put(("error", exc))
        else:
            channel.put(("done", None))

    def _consumed(self, n: int) -> None:
        with self._lock:
            self._queued -= n
            wake = self._queued <= self._HIGH_WATER // 2 and self._resume is not None
        if wake and self._loop is not None and self._resume is not None:
            resume = self._resume
            if not resume.is_set():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(resume.set)

    def batches(self, *, guarded: bool = False) -> Iterator[list[Result[Any]]]:
        """Batches of results as the loop thread hands them over.

        While this waits for the next batch, Ctrl-C is a message on the channel
        rather than an exception at an arbitrary point (which could drop a batch
        just taken off the channel); ``guarded``: the caller holds that guard for
        the whole iteration (``map``, which runs no user code in between).
        """
        self.start()
        channel = self._channel
        while True:
            with contextlib.nullcontext() if guarded else self.ctrl_c_as_message():
                try:
                    kind, payload = channel.get()
                except KeyboardInterrupt:  # Ctrl-C with a handler of the program's own
                    self._interrupt()
            if kind == "batch":
                self._consumed(len(payload))
                yield payload
                continue
            if kind == "sigint":
                self._interrupt()
            self._ended = True
            self._join()
            if kind == "error":
                raise payload
            if kind == "cancelled":
                raise_interrupted(self._salvage())
            return

    @contextlib.contextmanager
    def ctrl_c_as_message(self) -> Iterator[None]:
        """Turn SIGINT into a ``("sigint", None)`` message for ``batches`` — only in
        the main thread, and only where Python's default handler is in place."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._channel.put(("sigint", None))  # SimpleQueue.put is safe in a signal handler

    def _salvage(self) -> list[Result[Any]]:
        rest: list[Result[Any]] = []
        while True:
            try:
                kind, payload = self._channel.get_nowait()
            except queue.Empty:
                break
            if kind == "batch":
                rest.extend(payload)
        if self._run is not None:
            rest.extend(self._run.finished())
        rest.sort(key=lambda r: r.index)
        return rest

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _interrupt(self) -> NoReturn:
        """Ctrl-C: stop launching, cancel what runs, keep what finished; a second
        Ctrl-C while that happens leaves at once."""
        if signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._ended = True
        self._cancel()
        self._join()
        raise_interrupted(self._salvage())

    def _cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def close(self) -> None:
        """Stop the run early (finished results not yet read are dropped)."""
        if self._thread is not None and not self._ended:
            self._ended = True
            self._cancel()
            self._join()


def imap(
    fn: Callable[..., Any], items: Iterable[Any], /, **options: Unpack[Options]
) -> Iterator[Result[Any]]:
    """Call ``fn`` on each item concurrently; yield one ``Result`` per item as they come.

    Items are pulled lazily as workers free up, so ``items`` may be a huge or
    infinite generator. ``ordered=False`` yields in completion order. The
    keywords are those of ``fanout.map``. Ctrl-C raises ``fanout.Interrupted``
    carrying the results that finished but were not yet yielded.
    """
    config = configure(fn, options, api="imap")
    return _iterate(_SyncStream(fn, items, config, "imap"))


def _iterate(stream: _SyncStream) -> Iterator[Result[Any]]:
    try:
        for batch in stream.batches():
            yield from batch
    finally:
        stream.close()


def map(
    fn: Callable[..., Any], items: Iterable[Any], /, **options: Unpack[Options]
) -> Results[Any]:
    """Call ``fn`` on every item concurrently; return one ``Result`` per item, in
    input order, as ``fanout.Results`` (a list: ``.values()`` raises
    ``fanout.BatchError`` if any item failed; ``.failures``; ``.ok``).

    Keywords (the same for ``imap``, ``amap``, ``aimap`` and ``aimap_batches``):

    - ``mode``: ``"sequential"``, ``"thread"`` (blocking I/O), ``"async"``
      (coroutine functions; sync ones go to the thread pool), ``"process"``
      (CPU-bound), ``"dask"`` (a cluster), or ``"auto"`` (the default: async for
      coroutine functions; otherwise the first calls run in threads while their
      CPU demand is measured, then the rest go to processes if they are mostly
      CPU and that pays, else stay on threads; ``fanout.last_run().mode_reason``
      says why).
    - ``executor``: a configured executor instance (``fanout.ThreadExecutor()``,
      a cluster backend with its address...), instead of ``mode``.
    - ``concurrency``: calls running at once (default: thread 32, async 100,
      process one per core, sequential 1).
    - ``ordered``: results in input order (default) or in completion order.
    - ``timeout``: seconds per call (per attempt); a late call is recorded as
      ``CallTimeout``: async calls are cancelled, a process worker is killed, a
      thread runs on (Python cannot stop it) and keeps its slot until it ends.
    - ``retries``/``retry_on``: extra attempts on failures matching ``retry_on``
      (an exception class, a tuple or list of them, or a predicate
      ``fn(exc) -> bool``; default any Exception), after exponential backoff
      with full jitter (``backoff`` base seconds, capped at ``max_backoff``). A
      ``retry_after`` attribute on the exception is honoured up to
      ``max_retry_after`` seconds (default 120); ``retryable=False`` makes it
      final; ``throttle=True`` makes the whole run slow down.
    - ``rate``: at most this many call starts per period, e.g. ``"20/s"``,
      ``"600/min"``, shared by all workers and retries.
    - ``progress``: a progress display (default: on a terminal or in a
      Jupyter notebook); ``progress_interval``: seconds between plain progress
      lines when stderr is neither (default 10, or ``FANOUT_PROGRESS_INTERVAL``).
    - ``errors``: ``"collect"`` (default) keeps failures as results and logs one
      WARNING on the ``fanout`` logger when a run had some; ``"raise"``: the
      first failure cancels the rest and is raised.
    """
    config = configure(fn, options, api="map", keep=True)
    stream = _SyncStream(fn, items, config, "map")
    out: Results[Any] = Results()
    try:
        with stream.ctrl_c_as_message():
            for batch in stream.batches(guarded=True):
                out.extend(batch)
    except Interrupted as exc:
        out.extend(exc.results)
        out.sort(key=lambda r: r.index)
        raise_interrupted(out)
    finally:
        stream.close()
    return out


def _async_run(
    fn: Callable[..., Any], items: Any, options: AsyncOptions, api: str
) -> AsyncGenerator[list[Result[Any]], None]:
    config = configure(fn, options, api=api, allowed=ASYNC_OPTIONS)
    return Run(fn, items, config, stop=options.get("stop"), api=api).results()


async def aimap(
    fn: Callable[..., Any], items: Iterable[Any] | Any, /, **options: Unpack[AsyncOptions]
) -> AsyncIterator[Result[Any]]:
    """Async ``imap`` on the running loop: ``async for r in fanout.aimap(f, items)``.

    ``items`` may also be an async iterable. The keywords are those of
    ``fanout.map``, plus ``stop``: setting that ``asyncio.Event`` is a graceful
    stop — no more calls start, calls in flight are cancelled, and every result
    that had finished is still yielded (by index) before the iteration ends.
    Cancelling the consumer cancels every call in flight.
    """
    batches = _async_run(fn, items, options, "aimap")
    try:
        async for batch in batches:
            for result in batch:
                yield result
    finally:
        await batches.aclose()


async def aimap_batches(
    fn: Callable[..., Any], items: Iterable[Any] | Any, /, **options: Unpack[AsyncOptions]
) -> AsyncGenerator[list[Result[Any]], None]:
    """``aimap`` that yields lists of results as they become ready, not one by one.

    For consumers that handle thousands of results a second (writing them to a
    file): one step of the iteration per burst of results instead of one per
    result. Each list is in input order (``ordered=True``) and follows the
    previous one; ``stop`` works as in ``aimap``.
    """
    batches = _async_run(fn, items, options, "aimap_batches")
    try:
        async for batch in batches:
            yield batch
    finally:
        await batches.aclose()


async def amap(
    fn: Callable[..., Any], items: Iterable[Any] | Any, /, **options: Unpack[AsyncOptions]
) -> Results[Any]:
    """Async ``map`` on the running loop: ``results = await fanout.amap(f, items)``.

    Returns ``fanout.Results`` like ``map``. ``stop`` works as in ``aimap``: the
    results returned are those that finished.
    """
    batches = _async_run(fn, items, options, "amap")
    out: Results[Any] = Results()
    try:
        async for batch in batches:
            out.extend(batch)
    finally:
        await batches.aclose()
    return out
