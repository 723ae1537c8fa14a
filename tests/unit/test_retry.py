import random

from fanout._retry import RetryPolicy, is_throttle


class Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("429")
        self.retry_after = retry_after
        self.throttle = True


def test_no_retries_means_every_failure_is_final() -> None:
    delay, _err = RetryPolicy().decide(ValueError("x"), 1)
    assert delay is None


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(retries=50, backoff=0.5, max_backoff=4.0, rng=random.Random(1))
    for attempt in range(1, 30):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        delays = [policy.backoff_delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(delays) < ceiling * 0.2 and max(delays) > ceiling * 0.8


def test_retries_stop_after_n_extra_attempts() -> None:
    policy = RetryPolicy(retries=2)
    assert policy.decide(OSError(), 1)[0] is not None
    assert policy.decide(OSError(), 2)[0] is not None
    assert policy.decide(OSError(), 3)[0] is None


def test_retry_on_types_and_predicates() -> None:
    by_type = RetryPolicy(retries=3, retry_on=(ConnectionError,))
    assert by_type.decide(ConnectionResetError(), 1)[0] is not None
    assert by_type.decide(ValueError(), 1)[0] is None
    pred = RetryPolicy(retries=3, retry_on=lambda e: "again" in str(e))
    assert pred.decide(RuntimeError("try again"), 1)[0] is not None
    assert pred.decide(RuntimeError("fatal"), 1)[0] is None


def test_retryable_attribute_overrides_retry_on() -> None:
    exc = ValueError("final")
    exc.retryable = False  # type: ignore[attr-defined]
    assert RetryPolicy(retries=3).decide(exc, 1)[0] is None


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(retries=3, max_retry_after=10.0)
    assert policy.decide(Throttled(7.0), 1)[0] == 7.0
    delay, err = policy.decide(Throttled(30.0), 1)
    assert delay is None
    assert any("max_retry_after" in note for note in err.__notes__)
    assert is_throttle(Throttled(1.0))
    assert not is_throttle(ValueError())
