"""Executors: how one call runs, the only thing that differs between modes.

    _base.py        the Executor protocol
    _calls.py       running a batch of calls, the part every executor shares
    _sequential.py  _thread.py  _async.py  _process.py (+ _worker.py)   one mode each

``create_executor`` is the one place that maps a mode to a class.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fanout._errors import ConfigError
from fanout.executors._async import AsyncExecutor
from fanout.executors._base import Executor
from fanout.executors._calls import is_async_callable
from fanout.executors._sequential import SequentialExecutor
from fanout.executors._thread import ThreadExecutor

MODES = ("sequential", "thread", "async", "process", "auto")

__all__ = ["MODES", "Executor", "create_executor", "resolve_concurrency", "resolve_mode"]


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
        from fanout.executors._process import ProcessExecutor

        return ProcessExecutor(fn, concurrency)
    raise ConfigError(f"mode {mode!r} is not known")  # resolve_mode checked it already
