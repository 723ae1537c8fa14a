"""When to retry a failed call, and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fanout._errors import ConfigError

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; honours ``exc.retry_after``.

    An exception may carry duck-typed hints: ``retryable`` (bool, overrides
    ``retry_on``), ``retry_after`` (seconds the remote side asked for) and
    ``throttle`` (the remote side is rate limiting the whole run).
    """

    retries: int = 0
    retry_on: RetryOn = None
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an int >= 0 (got retries={self.retries!r})")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0 (got {name}={value!r})")
        on = self.retry_on
        if on is not None and not callable(on):
            types = on if isinstance(on, tuple) else (on,)
            if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
                raise ConfigError(
                    "retry_on must be exception types or a predicate "
                    f"(got retry_on={self.retry_on!r})"
                )
            object.__setattr__(self, "retry_on", types)

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
        retry_after = _retry_after(exc)
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


def _retry_after(exc: BaseException) -> float | None:
    value: Any = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, float(value))
    return None


def is_throttle(exc: BaseException) -> bool:
    """Whether the exception says the remote side is rate limiting us."""
    return getattr(exc, "throttle", False) is True
