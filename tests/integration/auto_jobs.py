"""Functions for the auto-mode tests (importable by worker processes)."""

from __future__ import annotations

import time


def spin(x: int, seconds: float = 0.02) -> int:
    """CPU-bound: burn this thread's CPU for ``seconds``."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    return x * 2


def flaky_spin(x: int) -> int:
    """CPU-bound, and items 3 and 8 fail."""
    spin(x, 0.02)
    if x in (3, 8):
        raise ValueError(x)
    return x * 2


def nap(x: int) -> int:
    time.sleep(0.02)
    return x * 2


def tiny(x: int) -> int:
    return x * 2


def tiny_len(text: str) -> int:
    return len(text)
