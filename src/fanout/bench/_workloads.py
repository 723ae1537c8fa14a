"""The built-in workloads, and the user's own function as one more.

A workload says which cells make sense (``plan``), sets up what its calls need
in the parent (``setup``: the mock server, the temp files), and in the cell's
own process turns a size into items and runs them through ``fanout.map``
(``run``). The call functions are module-level so process mode can pickle them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import http.client
import importlib
import inspect
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import fanout
from fanout.bench._model import MODES, Skipped

DEFAULT_LEVELS = (1, 8, 64, 512)
QUICK_LEVELS = (1, 8, 64)
#: process mode runs at most this many workers per core
PROCESSES_PER_CORE = 4
WARMUP_ITEMS = 2


@dataclass(frozen=True)
class Planned:
    mode: str
    concurrency: int
    items: int


@dataclass(frozen=True)
class RunOutcome:
    """One run of a cell, as the cell's process sees it."""

    failed: int
    first_error: str | None
    startup_s: float | None = None


def describe_error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def summarise(results: list[fanout.Result[Any]], startup: float | None = None) -> RunOutcome:
    failures = [r for r in results if not r.ok]
    first = describe_error(failures[0].error) if failures and failures[0].error else None
    return RunOutcome(len(failures), first, startup)


class Workload:
    """One scenario measured in every mode."""

    name: str = ""
    description: str = ""
    #: the formula of the theoretical minimum wall time, or None when there is none
    theoretical_min: str | None = None
    #: the note shown for async mode when it cannot use a real coroutine
    async_note: str | None = None
    #: every cell runs this many items instead of ``sizes`` (tiny smoke runs)
    items_override: int | None = None
    #: a built-in workload (bounded cell times), not the user's function
    builtin: bool = True

    def with_items(self, n: int) -> Workload:
        """A copy of this workload whose every cell runs ``n`` items."""
        clone = copy.copy(self)
        clone.items_override = n
        return clone

    def cell_items(self, concurrency: int, quick: bool) -> int:
        if self.items_override is not None:
            return self.items_override
        return self.sizes(concurrency, quick)

    # ---- parent side -------------------------------------------------------------------
    def sizes(self, concurrency: int, quick: bool) -> int:
        """How many items a cell at this concurrency runs."""
        raise NotImplementedError

    def plan(
        self, modes: list[str], levels: list[int] | None, cores: int, quick: bool
    ) -> tuple[list[Planned], list[Skipped]]:
        """The cells worth running, and the ones skipped with the reason."""
        default = levels is None
        chosen = list(levels or (QUICK_LEVELS if quick else DEFAULT_LEVELS))
        cells: list[Planned] = []
        skipped: list[Skipped] = []
        for mode in modes:
            mode_levels = list(chosen)
            if quick and default and mode in ("thread", "async") and "sequential" in modes:
                # one call at a time is measured once, by the sequential cell
                baseline = "--quick: the sequential cell measures one call at a time"
                skipped.append(Skipped(mode, 1, baseline))
                mode_levels = [level for level in mode_levels if level != 1]
            if mode in ("process", "dask") and default:  # workers are processes: the cores
                if quick:
                    skipped += [
                        Skipped(mode, level, "--quick runs process mode at the core count only")
                        for level in mode_levels
                        if level != cores
                    ]
                    mode_levels = [cores]
                elif cores not in mode_levels:
                    mode_levels = sorted({*mode_levels, cores})
            for level in mode_levels:
                n = self.cell_items(level, quick)
                reason = self.skip_reason(mode, level, n, cores, asked=not default)
                if reason is None:
                    cells.append(Planned(mode, level, n))
                else:
                    skipped.append(Skipped(mode, level, reason))
        return cells, skipped

    def skip_reason(
        self, mode: str, concurrency: int, items: int, cores: int, asked: bool = False
    ) -> str | None:
        """Why a cell is not worth running, or None; levels the user ``asked`` for run
        even when they exceed the item count."""
        if mode == "sequential" and concurrency != 1:
            return "sequential runs one call at a time"
        if mode == "process" and concurrency > PROCESSES_PER_CORE * cores:
            return (
                f"more than {PROCESSES_PER_CORE} processes per core ({cores} cores): "
                "each one is a whole interpreter"
            )
        if concurrency > items and concurrency != 1 and not asked:
            return f"more than the {items} items: the extra workers would idle"
        return None

    @contextlib.contextmanager
    def setup(self, quick: bool) -> Iterator[dict[str, Any]]:
        """Resources every cell shares (started once, in the parent); yields params."""
        yield {}

    def theoretical_min_s(
        self, items: int, concurrency: int, cores: int, per_item_s: float | None
    ) -> float | None:
        return None

    def note(self, mode: str, params: dict[str, Any]) -> str | None:
        return self.async_note if mode == "async" else None

    # ---- cell side ---------------------------------------------------------------------
    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def warmup_items(self, n: int, params: dict[str, Any]) -> list[Any]:
        """A few items run once before measuring: imports, first connections, caches."""
        return self.items(min(n, WARMUP_ITEMS), params)

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        raise NotImplementedError

    def run(
        self, mode: str, concurrency: int, items: list[Any], params: dict[str, Any]
    ) -> RunOutcome:
        fn = self.function(mode, params)
        results = fanout.map(fn, items, mode=mode, concurrency=concurrency, progress=False)
        return summarise(results)





def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


# ---- sleep ---------------------------------------------------------------------------------

SLEEP_S = 0.02


def blocking_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def async_sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


class SleepWorkload(Workload):
    name = "sleep"
    description = (
        f"{SLEEP_S * 1000:.0f} ms waits: time.sleep (sequential, thread, process), "
        "asyncio.sleep (async)"
    )
    theoretical_min = "items * 20 ms / concurrency"

    def sizes(self, concurrency: int, quick: bool) -> int:
        return _clamp(2 * concurrency, 8, 256) if quick else _clamp(4 * concurrency, 16, 2048)

    def theoretical_min_s(
        self, items: int, concurrency: int, cores: int, per_item_s: float | None
    ) -> float | None:
        return items * SLEEP_S / concurrency

    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [SLEEP_S] * n

    def warmup_items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [0.0] * min(n, WARMUP_ITEMS)

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        return async_sleep if mode == "async" else blocking_sleep


# ---- http ----------------------------------------------------------------------------------

HTTP_LATENCY_S = 0.05
_local = threading.local()


def _connection(netloc: str) -> http.client.HTTPConnection:
    conns: dict[str, http.client.HTTPConnection] | None = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(netloc)
    if conn is None:
        conn = conns[netloc] = http.client.HTTPConnection(netloc, timeout=60)
    return conn


def http_get(url: str) -> int:
    """GET with the stdlib, one keep-alive connection per thread; the body's size."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in (1, 2):
        conn = _connection(parts.netloc)
        try:
            conn.request("GET", target)
            response = conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, ConnectionError):
            conn.close()  # a kept-alive connection the server closed: reconnect once
            if attempt == 2:
                raise
            continue
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {url}")
        return len(body)
    raise AssertionError("unreachable")  # pragma: no cover


async def http_get_async(session: Any, url: str) -> int:
    """GET with aiohttp on a shared session; the body's size."""
    async with session.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {url}")
        return len(body)


class HttpWorkload(Workload):
    name = "http"
    description = (
        f"GET /todos/N from the mock server (own process, {HTTP_LATENCY_S * 1000:.0f} ms "
        "latency): http.client keep-alive per thread; aiohttp in async mode"
    )
    theoretical_min = "items * 50 ms / concurrency"

    def sizes(self, concurrency: int, quick: bool) -> int:
        return _clamp(2 * concurrency, 8, 256) if quick else _clamp(4 * concurrency, 16, 2048)

    @contextlib.contextmanager
    def setup(self, quick: bool) -> Iterator[dict[str, Any]]:
        from fanout.mock import MockServer

        with MockServer.spawn(latency=HTTP_LATENCY_S) as server:
            # the server's CPU is part of the workload, not another program's
            yield {"url": server.url, "helper_pids": [server.pid]}

    def theoretical_min_s(
        self, items: int, concurrency: int, cores: int, per_item_s: float | None
    ) -> float | None:
        return items * HTTP_LATENCY_S / concurrency

    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [f"{params['url']}/todos/{i % 200 + 1}" for i in range(n)]

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        return http_get

    def run(
        self, mode: str, concurrency: int, items: list[Any], params: dict[str, Any]
    ) -> RunOutcome:
        if mode != "async":
            return super().run(mode, concurrency, items, params)

        async def main() -> list[fanout.Result[Any]]:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                fetch = functools.partial(http_get_async, session)
                return await fanout.amap(
                    fetch, items, mode="async", concurrency=concurrency, progress=False
                )

        return summarise(asyncio.run(main()))


# ---- cpu -----------------------------------------------------------------------------------

CPU_LOOP = 400_000


def spin(n: int) -> int:
    """Pure-Python arithmetic: holds the GIL the whole time."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


async def spin_async(n: int) -> int:
    """The same loop in a coroutine: it never awaits, so it blocks the loop."""
    return spin(n)


class CpuWorkload(Workload):
    name = "cpu"
    description = (
        f"a pure-Python loop ({CPU_LOOP:,} iterations a call); async runs it in a coroutine"
    )
    theoretical_min = "items * t1 / min(concurrency, cores), t1 = sequential time per item"

    def sizes(self, concurrency: int, quick: bool) -> int:
        # fewer and the start of the worker processes hides what they gain
        return 32

    def theoretical_min_s(
        self, items: int, concurrency: int, cores: int, per_item_s: float | None
    ) -> float | None:
        if per_item_s is None:
            return None
        return items * per_item_s / min(concurrency, cores)

    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [CPU_LOOP] * n

    def warmup_items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [1000] * min(n, WARMUP_ITEMS)

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        return spin_async if mode == "async" else spin


# ---- files ---------------------------------------------------------------------------------

FILE_COUNT = 300
FILE_LINES = 40


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


class FilesWorkload(Workload):
    name = "files"
    description = f"read {FILE_COUNT} small files ({FILE_LINES} lines each) from a temp folder"
    async_note = "no async file API in the stdlib: async mode runs the sync read in the thread pool"

    def sizes(self, concurrency: int, quick: bool) -> int:
        return FILE_COUNT

    @contextlib.contextmanager
    def setup(self, quick: bool) -> Iterator[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="fanout-bench-") as folder:
            line = "fanout bench: a line of a small text file\n"
            for i in range(self.cell_items(1, quick)):
                with open(os.path.join(folder, f"{i:04d}.txt"), "w") as f:
                    f.write(line * FILE_LINES)
            yield {"dir": folder}

    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [os.path.join(params["dir"], f"{i:04d}.txt") for i in range(n)]

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        return count_lines


# ---- memory --------------------------------------------------------------------------------

MEMORY_WAITS = 10_000
MEMORY_WAIT_S = 1.0
#: perf_counter() at which each wait started (cell process only)
_starts: list[float] = []


def blocking_wait(seconds: float) -> float:
    _starts.append(time.perf_counter())
    time.sleep(seconds)
    return seconds


async def async_wait(seconds: float) -> float:
    _starts.append(time.perf_counter())
    await asyncio.sleep(seconds)
    return seconds


class MemoryWorkload(Workload):
    name = "memory"
    description = (
        f"{MEMORY_WAITS:,} concurrent {MEMORY_WAIT_S:g} s waits: coroutines (async) "
        "against threads; peak memory and start-up time"
    )
    theoretical_min = "one wait (1 s): all of them at once"

    def sizes(self, concurrency: int, quick: bool) -> int:
        return MEMORY_WAITS

    def plan(
        self, modes: list[str], levels: list[int] | None, cores: int, quick: bool
    ) -> tuple[list[Planned], list[Skipped]]:
        cells: list[Planned] = []
        skipped: list[Skipped] = []
        count = self.cell_items(MEMORY_WAITS, quick)
        for mode in modes:
            if mode in ("async", "thread"):
                cells.append(Planned(mode, count, count))
            elif mode == "sequential":
                skipped.append(Skipped(mode, 1, f"one at a time, {count:,} waits take hours"))
            else:
                skipped.append(
                    Skipped(mode, count, f"{count:,} processes would exhaust the machine")
                )
        return cells, skipped

    def theoretical_min_s(
        self, items: int, concurrency: int, cores: int, per_item_s: float | None
    ) -> float | None:
        return items * MEMORY_WAIT_S / concurrency

    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [MEMORY_WAIT_S] * n

    def warmup_items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return [0.0] * WARMUP_ITEMS

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        return async_wait if mode == "async" else blocking_wait

    def run(
        self, mode: str, concurrency: int, items: list[Any], params: dict[str, Any]
    ) -> RunOutcome:
        _starts.clear()
        start = time.perf_counter()
        try:
            results = fanout.map(
                self.function(mode, params),
                items,
                mode=mode,
                concurrency=concurrency,
                progress=False,
            )
        except RuntimeError as exc:  # the core could not start a thread
            raise RuntimeError(
                f"{len(_starts):,} of {len(items):,} {mode} waits started, then "
                f"{describe_error(exc)}"
            ) from exc
        startup = max(_starts) - start if _starts else None
        return summarise(results, startup)


# ---- the user's function -------------------------------------------------------------------


def load_target(target: str) -> Callable[..., Any]:
    """``module:function`` -> the function; ValueError with a one-line message."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{target!r} is not MODULE:FUNCTION (for example mypkg.jobs:score)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"cannot import {module_name!r} ({describe_error(exc)}); "
            "run from the folder that holds it, or set PYTHONPATH"
        ) from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"{module_name!r} has no attribute {attr!r} ({target})")
    if not callable(fn):
        raise ValueError(f"{target} is not callable (got {type(fn).__name__})")
    return fn  # type: ignore[no-any-return]


class UserWorkload(Workload):
    """The user's MODULE:FUNCTION on a sample of their items (a JSON list file)."""

    builtin = False

    def __init__(self, target: str = "", items_file: str = "", count: int = 0) -> None:
        self.name = target
        self.target = target
        self.items_file = items_file
        self.count = count
        self.description = f"{target} on {count} items"

    def sizes(self, concurrency: int, quick: bool) -> int:
        return self.count

    @contextlib.contextmanager
    def setup(self, quick: bool) -> Iterator[dict[str, Any]]:
        yield {"target": self.target, "items_file": self.items_file}

    def note(self, mode: str, params: dict[str, Any]) -> str | None:
        fn = load_target(params["target"])
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an object with async __call__
        )
        if mode == "async" and not is_async:
            return "a sync function: async mode runs it in the thread pool"
        if mode in ("sequential", "thread", "process", "dask") and is_async:
            return "an async function: each worker runs it to completion on its own loop"
        return None

    def items(self, n: int, params: dict[str, Any]) -> list[Any]:
        with open(params["items_file"], encoding="utf-8") as f:
            values: list[Any] = json.load(f)
        return values[:n]

    def warmup_items(self, n: int, params: dict[str, Any]) -> list[Any]:
        return self.items(min(n, WARMUP_ITEMS), params)

    def function(self, mode: str, params: dict[str, Any]) -> Callable[[Any], Any]:
        return load_target(params["target"])


BUILTINS: dict[str, Workload] = {
    w.name: w
    for w in (HttpWorkload(), SleepWorkload(), CpuWorkload(), FilesWorkload(), MemoryWorkload())
}


def workload_for(name: str, params: dict[str, Any]) -> Workload:
    """The workload a cell process runs."""
    if name in BUILTINS:
        return BUILTINS[name]
    return UserWorkload(params["target"], params["items_file"])


__all__ = ["BUILTINS", "DEFAULT_LEVELS", "MODES", "QUICK_LEVELS", "Workload", "workload_for"]
