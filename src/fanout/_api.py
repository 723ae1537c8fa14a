"""The public entry points: map, imap (sync) and amap, aimap (async).

The sync API runs the orchestrator on an event loop of its own, in a thread of
its own, so it works the same from a script, a thread, or code that already
runs a loop (a Jupyter notebook), and Ctrl-C stays with the caller's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

from fanout._errors import ConfigError, Interrupted
from fanout._limits import parse_rate
from fanout._loop import new_event_loop
from fanout._orchestrator import Run, RunConfig
from fanout._progress import want_progress
from fanout._result import Result
from fanout._retry import RetryOn, RetryPolicy
from fanout.executors import resolve_concurrency, resolve_mode

T = TypeVar("T")
Mode = Literal["auto", "sequential", "thread", "async", "process"]
Errors = Literal["collect", "raise"]


def run_config(
    fn: Callable[..., Any],
    mode: str = "auto",
    concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: RetryOn = None,
    rate: str | float | None = None,
    progress: bool | None = None,
    errors: str = "collect",
    max_retry_after: float = 120.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    keep: bool = False,
) -> RunConfig:
    """The checked configuration of a run; the parameters are those of ``map``
    (fanout's own commands that drive ``Run`` directly call it by keyword)."""
    if not callable(fn):
        if asyncio.iscoroutine(fn):
            fn.close()
            raise ConfigError(
                "expected a function, but got a coroutine object: you probably wrote "
                "fanout.map(f(x), items); write fanout.map(f, items)"
            )
        raise ConfigError(f"fn must be callable (got {fn!r})")
    resolved = resolve_mode(mode, fn)
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(f"timeout must be a number of seconds > 0 (got timeout={timeout!r})")
    if errors not in ("collect", "raise"):
        raise ConfigError(f"errors must be 'collect' or 'raise' (got errors={errors!r})")
    return RunConfig(
        mode=resolved,
        concurrency=resolve_concurrency(concurrency, resolved),
        ordered=bool(ordered),
        timeout=float(timeout) if timeout is not None else None,
        retry=RetryPolicy(
            retries=retries,
            retry_on=retry_on,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        ),
        rate=parse_rate(rate),
        progress=want_progress(progress),
        errors=errors,
        description=getattr(fn, "__name__", "fanout"),
        keep=keep,
    )


class _SyncStream:
    """Results of a run driven on a private loop thread, handed over in batches."""

    _HIGH_WATER = 65536

    def __init__(self, fn: Callable[..., Any], items: Iterable[Any], config: RunConfig) -> None:
        self._fn = fn
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
        self._startup_error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
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
            self._run = Run(self._fn, self._items, self._config)
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

    def batches(self) -> Iterator[list[Result[Any]]]:
        """Batches of results as the loop thread hands them over."""
        self.start()
        channel = self._channel
        while True:
            try:
                kind, payload = channel.get()
            except KeyboardInterrupt:
                self._interrupt()
                raise  # not reached: _interrupt raises
            if kind == "batch":
                self._consumed(len(payload))
                yield payload
                continue
            self._ended = True
            self._join()
            if kind == "error":
                raise payload
            if kind == "cancelled":
                raise Interrupted(self._salvage())
            return

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

    def _interrupt(self) -> None:
        """Ctrl-C: stop launching, cancel what runs, keep what finished; a second
        Ctrl-C while that happens leaves at once."""
        self._ended = True
        self._cancel()
        self._join()
        raise Interrupted(self._salvage()) from None

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
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    mode: Mode = "auto",
    concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: RetryOn = None,
    rate: str | float | None = None,
    progress: bool | None = None,
    errors: Errors = "collect",
    max_retry_after: float = 120.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> Iterator[Result[Any]]:
    """Call ``fn`` on each item concurrently; yield one ``Result`` per item as they come.

    Items are pulled lazily as workers free up, so ``items`` may be a huge or
    infinite generator. ``ordered=False`` yields in completion order. Each
    keyword is described in ``map``. Ctrl-C raises ``fanout.Interrupted``
    carrying the results that finished but were not yet yielded.
    """
    config = run_config(fn, mode, concurrency, ordered, timeout, retries, retry_on, rate,
                        progress, errors, max_retry_after, backoff, max_backoff)
    return _iterate(_SyncStream(fn, items, config))


def _iterate(stream: _SyncStream) -> Iterator[Result[Any]]:
    try:
        for batch in stream.batches():
            yield from batch
    finally:
        stream.close()


def map(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    mode: Mode = "auto",
    concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: RetryOn = None,
    rate: str | float | None = None,
    progress: bool | None = None,
    errors: Errors = "collect",
    max_retry_after: float = 120.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> list[Result[Any]]:
    """Call ``fn`` on every item concurrently; return one ``Result`` per item.

    - ``mode``: ``"sequential"``, ``"thread"`` (blocking I/O), ``"async"``
      (coroutine functions; sync ones go to the thread pool), ``"process"``
      (CPU-bound), or ``"auto"`` (async for coroutine functions, else thread).
    - ``concurrency``: calls running at once (default: thread 32, async 100,
      process one per core).
    - ``ordered``: results in input order (default) or in completion order.
    - ``timeout``: seconds per call; a late call is recorded as ``CallTimeout``.
    - ``retries``/``retry_on``: extra attempts on failures matching
      ``retry_on`` (exception types or a predicate; default any Exception),
      after exponential backoff with full jitter (``backoff`` base seconds,
      capped at ``max_backoff``). A ``retry_after`` attribute on the exception
      is honoured up to ``max_retry_after`` seconds; a ``throttle=True``
      attribute makes the whole run slow down.
    - ``rate``: at most this many call starts per period, e.g. ``"20/s"``,
      ``"600/min"``, shared by all workers and retries.
    - ``progress``: a bar on stderr (default: when stderr is a terminal).
    - ``errors``: ``"collect"`` failures as results; ``"raise"`` the first
      failure cancels the rest and is raised.
    """
    config = run_config(fn, mode, concurrency, ordered, timeout, retries, retry_on, rate,
                        progress, errors, max_retry_after, backoff, max_backoff, keep=True)
    stream = _SyncStream(fn, items, config)
    out: list[Result[Any]] = []
    try:
        for batch in stream.batches():
            out.extend(batch)
    except Interrupted as exc:
        out.extend(exc.results)
        out.sort(key=lambda r: r.index)
        raise Interrupted(out) from None
    finally:
        stream.close()
    return out


async def aimap(
    fn: Callable[..., Any],
    items: Iterable[Any] | Any,
    *,
    mode: Mode = "auto",
    concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: RetryOn = None,
    rate: str | float | None = None,
    progress: bool | None = None,
    errors: Errors = "collect",
    max_retry_after: float = 120.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Result[Any]]:
    """Async ``imap`` on the running loop: ``async for r in fanout.aimap(f, items)``.

    ``items`` may also be an async iterable. Cancelling the consumer cancels
    every call in flight. Setting ``stop`` is a graceful stop: no more calls
    start, calls in flight are cancelled, and every result that had finished
    is still yielded (by index) before the iteration ends.
    """
    config = run_config(fn, mode, concurrency, ordered, timeout, retries, retry_on, rate,
                        progress, errors, max_retry_after, backoff, max_backoff)
    run = Run(fn, items, config, stop=stop)
    batches = run.results()
    try:
        async for batch in batches:
            for result in batch:
                yield result
    finally:
        await batches.aclose()


async def aimap_batches(
    fn: Callable[..., Any],
    items: Iterable[Any] | Any,
    *,
    mode: Mode = "auto",
    concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: RetryOn = None,
    rate: str | float | None = None,
    progress: bool | None = None,
    errors: Errors = "collect",
    max_retry_after: float = 120.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[list[Result[Any]], None]:
    """``aimap`` that yields lists of results as they become ready, not one by one.

    For consumers that handle thousands of results a second (writing them to a
    file): one step of the iteration per burst of results instead of one per
    result. Each list is in input order (``ordered=True``) and follows the
    previous one; ``stop`` works as in ``aimap``.
    """
    config = run_config(fn, mode, concurrency, ordered, timeout, retries, retry_on, rate,
                        progress, errors, max_retry_after, backoff, max_backoff)
    batches = Run(fn, items, config, stop=stop).results()
    try:
        async for batch in batches:
            yield batch
    finally:
        await batches.aclose()


async def amap(
    fn: Callable[..., Any],
    items: Iterable[Any] | Any,
    *,
    mode: Mode = "auto",
    concurrency: int | None = None,
    ordered: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: RetryOn = None,
    rate: str | float | None = None,
    progress: bool | None = None,
    errors: Errors = "collect",
    max_retry_after: float = 120.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    stop: asyncio.Event | None = None,
) -> list[Result[Any]]:
    """Async ``map`` on the running loop: ``results = await fanout.amap(f, items)``.

    ``stop`` works as in ``aimap``: the results returned are those that finished.
    """
    config = run_config(fn, mode, concurrency, ordered, timeout, retries, retry_on, rate,
                        progress, errors, max_retry_after, backoff, max_backoff)
    run = Run(fn, items, config, stop=stop)
    out: list[Result[Any]] = []
    batches = run.results()
    try:
        async for batch in batches:
            out.extend(batch)
    finally:
        await batches.aclose()
    return out
