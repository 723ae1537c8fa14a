"""retry_on means what it says: classes, tuples or lists of them, or a predicate."""

from __future__ import annotations

import threading

import pytest

import fanout


class Counter:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, x: int) -> int:
        with self._lock:
            self.calls += 1
        raise self.error


@pytest.mark.parametrize("retry_on", [ConnectionError, (ConnectionError,), [ConnectionError]])
def test_an_exception_class_is_not_taken_for_a_predicate(retry_on: object) -> None:
    fn = Counter(ValueError("not a connection problem"))
    results = fanout.map(fn, [1], retries=3, retry_on=retry_on, backoff=0)  # type: ignore[arg-type]
    assert fn.calls == 1
    assert results[0].attempts == 1 and isinstance(results[0].error, ValueError)


@pytest.mark.parametrize("retry_on", [ConnectionError, [OSError, KeyError]])
def test_a_matching_class_is_retried(retry_on: object) -> None:
    fn = Counter(ConnectionResetError("reset"))
    results = fanout.map(fn, [1], retries=2, retry_on=retry_on, backoff=0)  # type: ignore[arg-type]
    assert fn.calls == 3 and results[0].attempts == 3


def test_a_predicate_decides() -> None:
    fn = Counter(RuntimeError("try again"))
    fanout.map(fn, [1], retries=2, backoff=0, retry_on=lambda exc: "again" in str(exc))
    assert fn.calls == 3
    fn = Counter(RuntimeError("fatal"))
    fanout.map(fn, [1], retries=2, backoff=0, retry_on=lambda exc: "again" in str(exc))
    assert fn.calls == 1
