"""Per-call deadlines, enforced once for every mode, with one timer per run.

A timer per call (set, then cancelled) costs more than the rest of a call's
bookkeeping. Calls with the same timeout expire in the order they started, so
one timer set for the earliest deadline serves them all: it fires about once
per timeout, finds that call finished, and moves on to the next. A call whose
deadline passes has the task awaiting it cancelled, like ``asyncio.timeout``;
the executor then stops the call as it declares (cancel, kill or abandon).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Protocol

from fanout._clock import Clock, Timer


class Cancellable(Hashable, Protocol):
    def cancel(self, msg: object = None, /) -> object: ...


class Deadlines:
    """The deadlines of the calls in flight, kept with one timer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._due: dict[Cancellable, float] = {}
        self._timer: Timer | None = None
        self._timer_at = math.inf

    def add(self, waiter: Cancellable, timeout: float) -> None:
        """Cancel ``waiter`` (the task awaiting a call) in ``timeout`` seconds unless
        ``remove``d first."""
        at = self.clock.time() + timeout
        self._due[waiter] = at
        if at < self._timer_at:
            self._arm(at)

    def remove(self, waiter: Cancellable) -> bool:
        """Forget ``waiter``'s deadline; True if it had passed (it was cancelled)."""
        return self._due.pop(waiter, None) is None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.clock.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.clock.time()  # uvloop may fire a timer up to 1 ms early: then re-arm
        late = [waiter for waiter, at in self._due.items() if at <= now]
        for waiter in late:
            del self._due[waiter]
            waiter.cancel()
        if self._due:
            self._arm(min(self._due.values()))
