"""The one record every input item yields, and the list ``map`` returns."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fanout._errors import BatchError

T = TypeVar("T")


class Result(Generic[T]):
    """The outcome of one input item: its value, or the error it ended with.

    ``index`` is the item's position in the input; ``attempts`` counts calls
    made (1 + retries used); ``elapsed`` is the seconds the last attempt took.
    """

    __slots__ = ("attempts", "elapsed", "error", "index", "item", "value")

    def __init__(
        self,
        index: int,
        item: Any,
        value: T | None = None,
        error: BaseException | None = None,
        attempts: int = 1,
        elapsed: float = 0.0,
    ) -> None:
        self.index = index
        self.item = item
        self.value = value
        self.error = error
        self.attempts = attempts
        self.elapsed = elapsed

    @property
    def ok(self) -> bool:
        """True when the call returned a value (``error`` is None)."""
        return self.error is None

    def __bool__(self) -> bool:
        """``bool(result)`` is ``result.ok``."""
        return self.error is None

    def unwrap(self) -> T:
        """Return the value, or raise the error the item failed with."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]

    def __repr__(self) -> str:
        if self.error is None:
            outcome = f"value={self.value!r}"
        else:
            outcome = f"error={type(self.error).__name__}({str(self.error)!r})"
        return (
            f"Result(index={self.index}, ok={self.ok}, {outcome}, "
            f"attempts={self.attempts}, elapsed={self.elapsed:.4f})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return (self.index, self.item, self.value, self.error, self.attempts) == (
            other.index,
            other.item,
            other.value,
            other.error,
            other.attempts,
        )

    __hash__ = None  # type: ignore[assignment]


class Results(list[Result[T]]):
    """What ``fanout.map`` and ``fanout.amap`` return: one ``Result`` per item, in
    input order — a list, with the failures impossible to miss.

    ``values()`` gives the values in order, or raises ``fanout.BatchError`` if
    any item failed; ``failures`` lists the failed results; ``ok`` is True when
    every item succeeded.
    """

    @property
    def failures(self) -> list[Result[T]]:
        """The results that failed, in order."""
        return [r for r in self if r.error is not None]

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return all(r.error is None for r in self)

    def values(self) -> list[T]:
        """The values in input order; ``fanout.BatchError`` if any item failed."""
        failures = self.failures
        if failures:
            raise BatchError(failures, len(self)) from failures[0].error
        return [r.value for r in self]  # type: ignore[misc]

    def __repr__(self) -> str:
        failed = len(self.failures)
        return f"<Results: {len(self)} items, {len(self) - failed} ok, {failed} failed>"
