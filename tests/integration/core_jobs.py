"""Module-level functions for the core tests (process mode needs them importable)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_running = 0
peak = 0


def double(x: int) -> int:
    return x * 2


def fail_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def crash_some(x: int) -> int:
    if x == 3:
        os._exit(7)
    if x == 5:
        os.kill(os.getpid(), signal.SIGSEGV)
    if x == 8:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def sleep_if_marked(x: int) -> int:
    if x < 0:
        time.sleep(600)
    return x


def ignore_sigterm_then_hang(x: int) -> int:
    if x < 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)
    return os.getpid()


def pid_of(x: int) -> int:
    return os.getpid()


def record_pid(path: str) -> None:
    """Write this process's pid to ``path/<pid>.pid`` whole: a reader never sees an
    empty file (written aside, then renamed)."""
    aside = Path(path, f"{os.getpid()}.tmp")
    aside.write_text(str(os.getpid()))
    os.replace(aside, Path(path, f"{os.getpid()}.pid"))


def record_pid_and_sleep(path: str) -> int:
    record_pid(path)
    time.sleep(600)
    return 0


def blocking_track(x: float) -> int:
    """Blocks for ``x`` seconds and records the peak number running at once."""
    global _running, peak
    with _lock:
        _running += 1
        peak = max(peak, _running)
    try:
        time.sleep(x)
    finally:
        with _lock:
            _running -= 1
    return peak


def reset_peak() -> None:
    global peak
    peak = 0


class Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("no pickling of this")


def return_lock(x: int) -> object:
    return threading.Lock()
