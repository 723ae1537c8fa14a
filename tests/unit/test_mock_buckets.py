"""The mock's limit arithmetic on an injected clock: buckets, window, schedule, headers."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest

from fanout.mock._buckets import (
    SlidingWindow,
    TokenBucket,
    go_duration,
    retry_ms,
    retry_seconds,
    rfc3339,
    schedule_factor,
)
from fanout.mock._config import MockConfig
from fanout.mock._ratelimit import Limits


def test_a_bucket_starts_full_and_refills_continuously_up_to_its_capacity() -> None:
    bucket = TokenBucket(60, 60.0, now=100.0)  # 1 a second, 60 deep
    assert bucket.remaining(100.0) == 60
    bucket.take(60)
    assert bucket.remaining(100.0) == 0
    assert bucket.remaining(100.5) == 0
    assert bucket.remaining(110.0) == 10
    assert bucket.remaining(1000.0) == 60  # never above capacity


def test_reset_is_the_time_until_the_bucket_is_full_again() -> None:
    bucket = TokenBucket(600, 60.0, now=0.0)  # 10 a second
    assert bucket.until_full(0.0) == 0.0
    bucket.take(30)
    assert bucket.until_full(0.0) == pytest.approx(3.0)
    assert bucket.until_full(1.0) == pytest.approx(2.0)


def test_wait_is_the_time_until_a_cost_fits_and_infinite_beyond_capacity() -> None:
    bucket = TokenBucket(60, 60.0, now=0.0)
    bucket.take(60)
    assert bucket.wait(5, 0.0) == pytest.approx(5.0)
    assert bucket.wait(5, 5.0) == 0.0
    assert math.isinf(bucket.wait(61, 5.0))


def test_a_short_bucket_holds_a_sixtieth_of_the_minute_and_refills_at_the_same_rate() -> None:
    short = TokenBucket(6000, 1.0, now=0.0)  # 100 a second, 1 s deep
    assert short.capacity == pytest.approx(100.0)
    assert short.remaining(0.0) == 100
    short.take(100)
    assert short.remaining(0.5) == 50
    assert short.until_full(0.5) == pytest.approx(0.5)
    # a small limit still lets one request in
    assert TokenBucket(30, 1.0, now=0.0, min_capacity=1.0).capacity == 1.0


def test_rescaling_changes_rate_and_capacity_and_spills_what_no_longer_fits() -> None:
    bucket = TokenBucket(60, 60.0, now=0.0)
    bucket.rescale(0.5, now=0.0)
    assert bucket.limit == 30
    assert bucket.remaining(0.0) == 30
    bucket.take(30)
    assert bucket.remaining(10.0) == 5  # half a unit a second
    bucket.rescale(1.0, now=10.0)
    assert bucket.remaining(20.0) == 15  # 5 + 10 at the old rate again


def test_adjust_gives_back_or_charges_and_a_charge_can_leave_a_debt() -> None:
    bucket = TokenBucket(60, 60.0, now=0.0)
    bucket.take(50)
    bucket.adjust(20, 0.0)
    assert bucket.remaining(0.0) == 30
    bucket.adjust(-40, 0.0)
    assert bucket.remaining(0.0) == 0  # in debt: -10
    assert bucket.wait(1, 0.0) == pytest.approx(11.0)
    bucket.adjust(1000, 0.0)
    assert bucket.remaining(0.0) == 60


def test_the_sliding_window_refuses_exactly_over_the_count_and_scales() -> None:
    window = SlidingWindow(2, 10.0)
    assert window.retry_after(0.0) == 0.0
    assert window.retry_after(1.0) == 0.0
    assert window.retry_after(2.0) == pytest.approx(8.0)
    assert window.remaining(2.0) == 0
    assert window.until_full(2.0) == pytest.approx(9.0)
    assert window.retry_after(10.0) == 0.0  # the first left the window
    assert window.limit(2.0) == 4
    assert window.retry_after(10.5, scale=2.0) == 0.0
    assert window.limit(0.1) == 1  # never below one


def test_schedule_factor_is_the_last_change_at_or_before_the_time() -> None:
    schedule = ((10.0, 0.5), (20.0, 1.5))
    assert schedule_factor(schedule, 0.0) == 1.0
    assert schedule_factor(schedule, 10.0) == 0.5
    assert schedule_factor(schedule, 19.9) == 0.5
    assert schedule_factor(schedule, 25.0) == 1.5
    assert schedule_factor((), 25.0) == 1.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),  # rounded up: never announce a reset before it happens
        (1.0, "1s"),
        (1.5, "1.5s"),
        (17.28, "17.28s"),
        (360.0, "6m0s"),
        (86.4, "1m26.4s"),
        (3600.0, "1h0m0s"),
    ],
)
def test_go_duration_is_openais_reset_format(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rfc3339_is_utc_to_the_second_rounded_up() -> None:
    moment = datetime.datetime(2024, 5, 1, 12, 0, 30, tzinfo=datetime.UTC).timestamp()
    assert rfc3339(moment) == "2024-05-01T12:00:30Z"
    assert rfc3339(moment + 0.1) == "2024-05-01T12:00:31Z"


def test_retry_after_values_round_up() -> None:
    assert retry_seconds(0.02) == "1"
    assert retry_seconds(2.0) == "2"
    assert retry_ms(0.0201) == "21"


def limits(**settings: Any) -> Limits:
    return Limits(MockConfig(**settings), now=0.0)


def test_admit_reserves_a_request_and_its_tokens_or_neither() -> None:
    gate = limits(rpm=60, tpm=100)
    assert gate.admit(80, 0.0) == (None, 0.0)
    cause, wait = gate.admit(30, 0.0)  # 20 tokens left
    assert cause == "tokens"
    assert wait == pytest.approx(10 / (100 / 60))
    assert gate.requests is not None and gate.requests.remaining(0.0) == 59  # not taken
    assert "Limit 100, Used 80, Requested 30" in gate.refusal("tokens", 30, 0.0)
    cause, wait = gate.admit(500, 0.0)
    assert cause == "tokens" and math.isinf(wait)
    assert "Request too large" in gate.refusal("tokens", 500, 0.0)


def test_the_requests_bucket_refuses_first() -> None:
    gate = limits(rpm=1, tpm=10)
    assert gate.admit(1, 0.0) == (None, 0.0)
    cause, wait = gate.admit(100, 0.0)
    assert cause == "requests"
    assert wait == pytest.approx(60.0)
    assert "Rate limit reached for requests per min (RPM): Limit 1, Used 1, Requested 1" in (
        gate.refusal("requests", 100, 0.0)
    )


def test_openai_headers_show_limit_remaining_and_time_until_full() -> None:
    gate = limits(rpm=60, tpm=6000)
    gate.admit(1500, 0.0)
    assert gate.openai_headers(0.0) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "4500",
        "x-ratelimit-reset-tokens": "15s",
    }
    only_requests = limits(rpm=60)
    assert set(only_requests.openai_headers(0.0)) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }


def test_anthropic_headers_give_the_reset_as_a_time() -> None:
    gate = limits(rpm=60, tpm=6000)
    gate.admit(1500, 0.0)
    wall = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC).timestamp()
    headers = gate.anthropic_headers(0.0, wall)
    assert headers["anthropic-ratelimit-requests-limit"] == "60"
    assert headers["anthropic-ratelimit-requests-remaining"] == "59"
    assert headers["anthropic-ratelimit-requests-reset"] == "2024-05-01T12:00:01Z"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "4500"
    assert headers["anthropic-ratelimit-tokens-reset"] == "2024-05-01T12:00:15Z"


def test_window_headers_in_ietf_and_openai_styles() -> None:
    gate = limits(rate_limit=(3, 10.0))
    assert gate.window_headers("ietf", 0.0)["RateLimit-Remaining"] == "3"
    gate.window_wait(0.0)
    gate.window_wait(4.0)
    assert gate.window_headers("ietf", 4.5) == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "1",
        "RateLimit-Reset": "10",  # the whole quota is back when the last one leaves: 14 - 4.5
        "RateLimit-Policy": "3;w=10",
    }
    assert gate.window_headers("openai", 4.5) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "9.5s",
    }
    assert gate.window_headers("none", 4.5) == {}


def test_the_schedule_scales_window_and_buckets() -> None:
    gate = limits(rate_limit=(10, 1.0), rpm=60, limit_schedule=((5.0, 0.5),))
    gate.follow_schedule(1.0, 1.0)
    assert gate.scale == 1.0
    gate.follow_schedule(5.0, 5.0)
    assert gate.scale == 0.5
    assert gate.openai_headers(5.0)["x-ratelimit-limit-requests"] == "30"
    assert gate.window_headers("ietf", 5.0)["RateLimit-Limit"] == "5"


def test_settle_gives_back_unused_reserved_tokens() -> None:
    gate = limits(tpm=600)
    gate.admit(100, 0.0)
    gate.settle(reserved=100, used=40, now=0.0)
    assert gate.tokens is not None and gate.tokens.remaining(0.0) == 560  # 600 - 100 + 60
