"""The one record every input item yields."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

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
