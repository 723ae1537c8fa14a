"""The mock's limits as arithmetic on an injected clock: token buckets (OpenAI's requests- and
tokens-per-minute), the sliding window of ``--rate-limit``, the limit schedule, and the
duration formats the headers use. Nothing here reads a clock or sleeps."""

from __future__ import annotations

import bisect
import datetime
import math
from collections import deque
from collections.abc import Sequence


class TokenBucket:
    """A bucket refilled continuously with ``per_minute / 60`` units a second, holding at most
    ``per_minute * depth / 60`` (``depth`` seconds of refill; 60 s is OpenAI's full minute,
    1 s a "short bucket"). It starts full.

    ``scale`` multiplies the rate and the capacity (the limit schedule); ``min_capacity``
    keeps a short bucket of a small limit able to hold one request.
    """

    def __init__(
        self, per_minute: float, depth: float, now: float, *, min_capacity: float = 0.0
    ) -> None:
        self.per_minute = per_minute
        self.depth = depth
        self.min_capacity = min_capacity
        self.scale = 1.0
        self.level = self.capacity
        self.updated = now

    @property
    def limit(self) -> float:
        """The announced limit: units per minute, scaled."""
        return self.per_minute * self.scale

    @property
    def rate(self) -> float:
        """Units refilled per second."""
        return self.limit / 60.0

    @property
    def capacity(self) -> float:
        return max(self.limit * self.depth / 60.0, self.min_capacity)

    def refill(self, now: float) -> None:
        """Add what flowed in since the last update (never above capacity)."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def rescale(self, scale: float, now: float) -> None:
        """Change the limit from ``now`` on; a smaller bucket spills what no longer fits."""
        if scale != self.scale:
            self.refill(now)
            self.scale = scale
            self.level = min(self.level, self.capacity)

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits (0.0: it fits now; ``inf``: it never can)."""
        self.refill(now)
        if cost <= self.level:
            return 0.0
        if cost > self.capacity:
            return math.inf
        return (cost - self.level) / self.rate

    def take(self, cost: float) -> None:
        """Remove ``cost`` (after :meth:`wait` said it fits)."""
        self.level -= cost

    def adjust(self, amount: float, now: float) -> None:
        """Give back (``amount > 0``) or charge more; a charge may leave the bucket in debt."""
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)

    def remaining(self, now: float) -> int:
        """Whole units available now (never negative)."""
        self.refill(now)
        return max(0, math.floor(self.level))

    def until_full(self, now: float) -> float:
        """Seconds until the bucket is full again: OpenAI's and Anthropic's "reset"."""
        self.refill(now)
        return max(0.0, (self.capacity - self.level) / self.rate)


class SlidingWindow:
    """At most ``count`` requests accepted in any window of ``period`` seconds (a sliding log).

    Stricter than a token bucket, whose full bucket plus refill lets up to twice the count
    through one window: here a client is refused exactly when it breaks the stated limit.
    """

    def __init__(self, count: int, period: float) -> None:
        self.count = count
        self.period = period
        self.accepted: deque[float] = deque()

    def limit(self, scale: float) -> int:
        """The count in force at ``scale`` (never below 1)."""
        return max(1, round(self.count * scale))

    def _expire(self, now: float) -> None:
        accepted = self.accepted
        horizon = now - self.period
        while accepted and accepted[0] <= horizon:
            accepted.popleft()

    def retry_after(self, now: float, scale: float = 1.0) -> float:
        """0.0 if a request arriving ``now`` is accepted (and records it), else seconds to wait."""
        self._expire(now)
        limit = self.limit(scale)
        if len(self.accepted) >= limit:
            return self.accepted[-limit] + self.period - now
        self.accepted.append(now)
        return 0.0

    def remaining(self, now: float, scale: float = 1.0) -> int:
        """Requests that would be accepted now."""
        self._expire(now)
        return max(0, self.limit(scale) - len(self.accepted))

    def until_full(self, now: float) -> float:
        """Seconds until the whole quota is back (the last accepted request leaves the window)."""
        self._expire(now)
        return self.accepted[-1] + self.period - now if self.accepted else 0.0


def schedule_factor(schedule: Sequence[tuple[float, float]], elapsed: float) -> float:
    """The factor in force ``elapsed`` seconds after start: the last ``(at, factor)`` of the
    sorted ``schedule`` with ``at <= elapsed``, else 1.0."""
    index = bisect.bisect_right(schedule, elapsed, key=lambda change: change[0])
    return schedule[index - 1][1] if index else 1.0


def go_duration(seconds: float) -> str:
    """OpenAI's reset format (Go's ``time.Duration``), to the millisecond, rounded up:
    ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h0m0s``; ``0s`` for nothing."""
    ms = math.ceil(seconds * 1000.0 - 1e-6) if seconds > 0 else 0
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, fraction = divmod(ms, 1000)
    secs = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rfc3339(timestamp: float) -> str:
    """Anthropic's reset format: the UTC time to the second, rounded up, e.g.
    ``2024-05-01T12:00:30Z``."""
    moment = datetime.datetime.fromtimestamp(math.ceil(timestamp), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_seconds(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up."""
    return str(max(0, math.ceil(seconds - 1e-9)))


def retry_ms(seconds: float) -> str:
    """A ``retry-after-ms`` value: whole milliseconds, rounded up."""
    return str(max(0, math.ceil(seconds * 1000.0 - 1e-6)))
