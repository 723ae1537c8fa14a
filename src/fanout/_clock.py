"""The clock the scheduler's timers run on: an asyncio loop, or a fake one in tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled callback (``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time and timers; every ``asyncio`` event loop is one."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Timer: ...

    def call_later(self, delay: float, callback: Callable[[], object], /) -> Timer: ...
