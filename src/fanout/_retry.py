"""Retries: when a failed call is tried again (the policy), and when it is due (the scheduler)."""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fanout._clock import Clock, Timer

#: what ``retry_on`` holds once checked: exception classes, or a predicate
RetryMatch = tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None

DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0
DEFAULT_MAX_RETRY_AFTER = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; honours ``exc.retry_after``.

    Plain data, checked by ``fanout._config`` when a run is configured. An
    exception may carry duck-typed hints: ``retryable`` (bool, overrides
    ``retry_on``), ``retry_after`` (seconds the remote side asked for) and
    ``throttle`` (the remote side is rate limiting the whole run).
    """

    retries: int = 0
    retry_on: RetryMatch = None
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is of a kind worth retrying at all."""
        hint = getattr(exc, "retryable", None)
        if isinstance(hint, bool):
            return hint
        on = self.retry_on
        if on is None:
            return isinstance(exc, Exception)
        if isinstance(on, tuple):
            return isinstance(exc, on)
        return bool(on(exc))

    def backoff_delay(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(max_backoff, backoff * 2**(attempt-1)))."""
        ceiling = min(self.max_backoff, self.backoff * (2.0 ** min(attempt - 1, 60)))
        return self.rng.uniform(0.0, ceiling)

    def decide(self, exc: BaseException, attempts: int) -> tuple[float | None, BaseException]:
        """After ``attempts`` calls failed with ``exc``: (delay before the next, error).

        The delay is None when the item is final; the error may then be a
        clearer one (a Retry-After beyond ``max_retry_after``).
        """
        if attempts > self.retries or not self.matches(exc):
            return None, exc
        retry_after = retry_after_of(exc)
        if retry_after is None:
            return self.backoff_delay(attempts), exc
        if retry_after > self.max_retry_after:
            note = (
                f"server asked to retry after {retry_after:g}s, beyond "
                f"max_retry_after={self.max_retry_after:g}s"
            )
            exc.add_note(note)
            return None, exc
        return retry_after, exc


def retry_after_of(exc: BaseException) -> float | None:
    """The seconds an exception's ``retry_after`` hint asks for, if any."""
    value: Any = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, float(value))
    return None


def is_throttle(exc: BaseException) -> bool:
    """Whether the exception says the remote side is rate limiting us."""
    return getattr(exc, "throttle", False) is True


J = TypeVar("J")


class RetryScheduler(Generic[J]):
    """Jobs waiting to be retried: each waits on a timer, holding no worker, then
    queues up as due; ``on_due`` is called whenever one becomes due."""

    def __init__(self, clock: Clock, on_due: Callable[[], None]) -> None:
        self._clock = clock
        self._on_due = on_due
        self._timers: set[Timer] = set()
        self.due: collections.deque[J] = collections.deque()
        #: jobs still waiting on their timer
        self.waiting = 0

    def schedule(self, job: J, delay: float) -> None:
        """Make ``job`` due in ``delay`` seconds."""
        self.waiting += 1
        timer: Timer

        def fire() -> None:
            self._timers.discard(timer)
            self.waiting -= 1
            self.due.append(job)
            self._on_due()

        timer = self._clock.call_later(delay, fire)
        self._timers.add(timer)

    def pop(self) -> J | None:
        """The next due job, if any."""
        return self.due.popleft() if self.due else None

    def cancel(self) -> None:
        """Drop every waiting job (the run is ending)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.waiting = 0
