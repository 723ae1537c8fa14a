"""Flow control: the gate every call start passes, and what it learns from outcomes.

The orchestrator never branches on the kind of limit. Before a call starts it
asks the gate (``try_start``, else ``await start``); when the call's outcome is
in it reports it (``observe``: when the call started and how it ended, from
which overload signals such as ``exc.throttle`` and ``exc.retry_after`` are
read); when the call's slot is free again it says so (``release``). A
controller behind this protocol owns the concurrency cap, the rate, and how
they react to the server pushing back.
"""

from __future__ import annotations

from typing import Protocol

from fanout._limits import AdaptiveCap, RateLimiter
from fanout._retry import is_throttle, retry_after_of
from fanout.executors._calls import Outcome


class FlowControl(Protocol):
    """What the orchestrator needs from a flow controller."""

    def try_start(self) -> bool:
        """Take a slot and start at once if allowed, without waiting (the hot path)."""
        ...

    async def start(self) -> None:
        """Wait until a call may start, and take its slot."""
        ...

    def observe(self, started: float, outcome: Outcome) -> None:
        """A call that started at ``started`` (loop time) ended with ``outcome``."""
        ...

    def release(self) -> None:
        """A call's slot is free again (after ``observe``; later for an abandoned call)."""
        ...


class StartGate:
    """A concurrency cap and a start rate (GCRA); a throttle signal (``exc.throttle``)
    pauses every start for the call's ``retry_after``, widens the spacing and halves
    the cap, which recover gradually as calls succeed."""

    def __init__(self, concurrency: int, rate: float | None) -> None:
        self._cap = AdaptiveCap(concurrency)
        self._limiter = RateLimiter(rate)
        self._throttled = False

    def try_start(self) -> bool:
        if self._limiter.active:
            return False
        return self._cap.try_start()

    async def start(self) -> None:
        cap = self._cap
        if not cap.try_start():
            await cap.wait_can_start()
        if self._limiter.active:
            try:
                await self._limiter.acquire()
            except BaseException:
                cap.notify_finished()
                raise

    def observe(self, started: float, outcome: Outcome) -> None:
        errors = outcome[2]
        successes = len(outcome[0]) - (len(errors) if errors else 0)
        if errors:
            for error in errors.values():
                if is_throttle(error):
                    self._throttled = True
                    self._limiter.throttle(retry_after_of(error) or 0.0)
                    self._cap.throttle()
        if self._throttled and successes:
            for _ in range(successes):
                self._limiter.notify_success()
                self._cap.notify_success()

    def release(self) -> None:
        self._cap.notify_finished()
