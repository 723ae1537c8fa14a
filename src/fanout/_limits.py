"""Start-rate limiting shared by every worker of a run.

The limiter is GCRA with a burst of one (an evenly spaced schedule): a call may
start only once ``interval`` has passed since the previous start, measured on
real start times, so no window of length ``limit * interval`` ever holds more
than ``limit`` starts. A full-size token bucket (aiolimiter's leaky bucket) lets
a burst of ``limit`` follow a full window, i.e. up to twice the limit in some
windows; see https://brandur.org/rate-limiting for GCRA.

``throttle(delay)`` is the back-pressure hook for a remote side that said "slow
down" (HTTP 429): every worker pauses until ``now + delay`` and the spacing is
widened, then narrows again as calls succeed (multiplicative decrease, gradual
recovery).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable

from fanout._errors import ConfigError

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_RATE_RE = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([0-9]*\.?[0-9]*)\s*([a-z]+)\s*$"
)

# Pace 3% under the limit so that network and scheduling jitter between our
# start and the server's clock (up to 30 ms over a 1 s window) does not put
# limit+1 requests into one of its windows.
_SAFETY = 1.03
_MAX_SLOWDOWN = 64.0


def parse_rate(rate: str | float | int | None, *, name: str = "rate") -> float | None:
    """Calls per second from ``"20/s"``, ``"600/min"``, ``"5/2s"``, ``"1000/h"`` or a number."""
    if rate is None:
        return None
    if isinstance(rate, bool):
        raise ConfigError(f"{name} must be like '20/s' or '600/min' (got {name}={rate!r})")
    if isinstance(rate, (int, float)):
        per_second = float(rate)
    elif isinstance(rate, str):
        match = _RATE_RE.match(rate.lower())
        if match is None or match.group(3) not in _UNITS:
            raise ConfigError(
                f"{name} must be like '20/s', '600/min' or '5000/h' (got {name}={rate!r})"
            )
        count = float(match.group(1))
        span = float(match.group(2)) if match.group(2) else 1.0
        if span <= 0:
            raise ConfigError(f"{name} period must be > 0 (got {name}={rate!r})")
        per_second = count / (span * _UNITS[match.group(3)])
    else:
        raise ConfigError(f"{name} must be a string like '20/s' or a number (got {name}={rate!r})")
    if not math.isfinite(per_second) or per_second <= 0:
        raise ConfigError(f"{name} must be > 0 calls per second (got {name}={rate!r})")
    return per_second


class RateLimiter:
    """Paces call starts; shared by all workers of one run, retries included."""

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = _SAFETY / per_second if per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._last = -math.inf
        self._paused_until = -math.inf
        self._slowdown = 1.0
        self._lock = asyncio.Lock()
        #: whether acquire() can ever wait: a rate is set, or a throttle happened
        self.active = self._interval > 0

    def _next_allowed(self) -> float:
        spacing = self._interval * self._slowdown
        return max(self._last + spacing, self._paused_until)

    async def acquire(self) -> None:
        """Wait until one more call may start, and record its start."""
        async with self._lock:  # FIFO: waiters start in arrival order
            while True:
                now = self._clock()
                at = self._next_allowed()
                if now >= at:
                    self._last = now
                    return
                await self._sleep(at - now)

    def throttle(self, delay: float) -> None:
        """The remote side asked us to slow down: pause every start for ``delay`` s."""
        self._paused_until = max(self._paused_until, self._clock() + max(delay, 0.0))
        self.active = True
        self._slowdown = min(self._slowdown * 2.0, _MAX_SLOWDOWN)

    def notify_success(self) -> None:
        """A call succeeded: recover gradually from an earlier throttle."""
        if self._slowdown > 1.0:
            self._slowdown = max(1.0, self._slowdown * 0.98)


class AdaptiveCap:
    """How many calls may run at once: the user's limit, halved on each throttle
    and grown back by one per ``cap`` successes (AIMD, as TCP does)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cap = float(limit)
        self.running = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def cap(self) -> int:
        return max(1, int(self._cap))

    def try_start(self) -> bool:
        """Start a call at once if the cap allows it (no await on the hot path)."""
        if self.running < self._cap:
            self.running += 1
            return True
        return False

    async def wait_can_start(self) -> None:
        while self.running >= self.cap:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        self.running += 1

    def notify_finished(self) -> None:
        self.running -= 1
        if self._waiters:
            self._wake()

    def throttle(self) -> None:
        self._cap = max(1.0, min(self._cap, float(self.running)) / 2.0)

    def notify_success(self) -> None:
        if self._cap < self.limit:
            self._cap = min(float(self.limit), self._cap + 1.0 / self._cap)
            self._wake()

    def _wake(self) -> None:
        free = self.cap - self.running
        while free > 0 and self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)
                free -= 1
