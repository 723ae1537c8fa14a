"""The server's own numbers: rate-limit headers read per family (fanout.http._ratelimit) and
the models that pace by them (fanout._quota), on explicit times."""

from __future__ import annotations

import math

import pytest
from multidict import CIMultiDict

from fanout._quota import Ledger, QuotaReport, ServerQuota
from fanout.http._ratelimit import (
    api_of,
    default_estimator,
    go_duration,
    precise_retry_after,
    reports,
    usage_of,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("text", "seconds"), [
    ("20ms", 0.02), ("1s", 1.0), ("1.5s", 1.5), ("6m0s", 360.0), ("1h2m3.5s", 3723.5),
    ("0s", 0.0), ("", None), ("soon", None), ("5x", None),
])
def test_go_durations_of_openai_resets(text: str, seconds: float | None) -> None:
    assert go_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_headers_are_continuous_buckets_per_minute() -> None:
    found = reports({
        "x-ratelimit-limit-requests": "3000", "x-ratelimit-remaining-requests": "2999",
        "x-ratelimit-reset-requests": "20ms", "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": "149000", "x-ratelimit-reset-tokens": "400ms",
    }, NOW)
    assert found == [
        QuotaReport("requests", "continuous", 2999, 0.02, 3000, 60.0),
        QuotaReport("tokens", "continuous", 149000, 0.4, 150000, 60.0),
    ]


def test_anthropic_headers_reset_at_an_rfc3339_time() -> None:
    found = reports({
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:30Z",
    }, NOW)  # NOW is 2023-11-14T22:13:20Z
    assert found == [QuotaReport("requests", "continuous", 0, 10.0, 50, 60.0)]


def test_ietf_draft_headers_are_a_window_whose_quota_comes_back_at_reset() -> None:
    separate = reports({"RateLimit-Limit": "100", "RateLimit-Remaining": "7",
                        "RateLimit-Reset": "3", "RateLimit-Policy": "100;w=10"})
    combined = reports({"RateLimit": "limit=100, remaining=7, reset=3"})
    structured = reports({"RateLimit": '"default";r=7;t=3',
                          "RateLimit-Policy": '"default";q=100;w=10'})
    assert separate == [QuotaReport("requests", "window", 7, 3, 100, 10)]
    assert combined == [QuotaReport("requests", "window", 7, 3, 100, None)]
    assert structured == [QuotaReport("requests", "window", 7, 3, 100, 10)]


def test_github_style_headers_reset_at_a_unix_time() -> None:
    found = reports(CIMultiDict({"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-Reset": str(int(NOW) + 42)}), NOW)
    assert found == [QuotaReport("requests", "window", 0, 42, 60, None)]
    assert reports({"Content-Type": "application/json"}) == []


def test_retry_after_ms_is_read_to_the_millisecond() -> None:
    assert precise_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert precise_retry_after({"retry-after": "1"}) is None


def test_the_api_of_a_request_and_its_estimated_tokens() -> None:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x" * 40}]}
    assert api_of("https://api.anthropic.com/v1/messages") == "anthropic"
    assert api_of("https://api.openai.com/v1/chat/completions?x=1") == "openai"
    assert api_of("https://example.com/todos/1") is None
    assert default_estimator(body, "http://h/v1/chat/completions") == 110
    assert default_estimator(body, "http://h/todos/1") == 0
    assert usage_of(b'{"usage": {"prompt_tokens": 7, "completion_tokens": 3}}', "openai") == (7, 3)
    assert usage_of(b'{"usage": {"input_tokens": 7, "output_tokens": 3}}', "anthropic") == (7, 3)
    assert usage_of(b"not json", "openai") is None


def continuous(remaining: float, reset: float, limit: float = 600.0) -> QuotaReport:
    return QuotaReport("requests", "continuous", remaining, reset, limit, 60.0)


def test_a_continuous_bucket_at_zero_paces_at_its_refill_rate_not_its_reset() -> None:
    quota = ServerQuota("requests")
    # 600/min = 10/s; empty, full again in 60 s (a bucket of a whole minute)
    quota.observe(continuous(0, 60.0), started=0.0, now=1.0)
    at = quota.ready_at(1.0, 1.0)
    assert at == pytest.approx(1.0 + 0.102, abs=0.002)  # one request flows back in ~0.1 s
    starts, now = [], 1.0
    for _ in range(50):
        now = quota.ready_at(now, 1.0)
        quota.take(now, 1.0)
        starts.append(now)
    rate = 49 / (starts[-1] - starts[0])
    assert rate == pytest.approx(10 / 1.02, rel=0.01)


def test_a_continuous_bucket_with_room_lets_calls_go_at_once() -> None:
    quota = ServerQuota("tokens")
    quota.observe(QuotaReport("tokens", "continuous", 5000, 1.0, 150_000, 60.0), 0.0, 1.0)
    for _ in range(5):
        assert quota.ready_at(1.0, 1000.0) == 1.0
        quota.take(1.0, 1000.0)
    assert quota.ready_at(1.0, 1000.0) > 1.0  # spent
    assert quota.ready_at(1.0, 0.0) == 1.0  # a call that costs no tokens never waits
    assert quota.ready_at(1.0, 10**9) == 1.0  # nor one that can never fit: the server says so


def test_a_window_at_zero_waits_for_its_reset_then_has_its_quota_back() -> None:
    quota = ServerQuota("requests")
    quota.observe(QuotaReport("requests", "window", 0, 3.0, 100, 10.0), started=0.0, now=1.0)
    assert quota.ready_at(1.5, 1.0) == 4.0
    for _ in range(100):
        assert quota.ready_at(4.0, 1.0) == 4.0
        quota.take(4.0, 1.0)
    assert quota.ready_at(4.0, 1.0) == 14.0  # the next window, from the policy's w=10


def test_reports_count_what_we_started_since_and_stale_ones_are_dropped() -> None:
    quota = ServerQuota("requests")
    quota.observe(continuous(100, 1.0), started=0.0, now=0.05)
    for i in range(10):
        quota.take(0.1 + i * 0.01, 1.0)
    # an answer to a call started at 0.131: the 6 we started after it, and the one
    # started less than REORDER before it, may not have been counted
    assert quota.observe(continuous(95, 1.0), started=0.131, now=0.3)
    assert quota.level(0.3) == pytest.approx(95 - 7, abs=0.01)
    # an older answer arriving late is dropped
    assert not quota.observe(continuous(50, 1.0), started=0.11, now=0.31)
    assert quota.report is not None and quota.report.remaining == 95


def test_the_ledger_answers_what_was_started_after_a_time() -> None:
    ledger = Ledger(keep=4)
    for i in range(20):
        ledger.add(float(i), 2.0)
    assert ledger.after(15.0) == 8.0
    assert ledger.after(100.0) == 0.0
    ledger.forget_before(17.0)
    assert ledger.after(16.5) == 6.0
    assert math.isclose(ledger.total, 40.0)


def test_a_window_used_up_without_a_reset_is_tried_again_each_second() -> None:
    quota = ServerQuota("requests")
    quota.observe(QuotaReport("requests", "window", 0, None, 10, None), started=0.0, now=1.0)
    assert quota.ready_at(1.0, 1.0) == 2.0
