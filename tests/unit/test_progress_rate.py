"""The one rate computation: recent and overall rates, ETA, formatting (explicit times)."""

from __future__ import annotations

import pytest

from fanout._progress_rate import (
    RateMeter,
    format_duration,
    format_rate,
    overall_rate,
    overall_rate_text,
)


def test_no_rate_before_anything_finished() -> None:
    meter = RateMeter(start=100.0)
    meter.sample(101.0, 0)
    assert meter.recent() is None
    assert meter.overall() == 0.0
    assert meter.eta(10) is None


def test_recent_rate_follows_the_last_seconds_and_overall_the_whole_run() -> None:
    meter = RateMeter(start=0.0, window=5.0)
    for tick in range(1, 41):  # 10 items/s for 10 s, then 100 items/s for 10 s
        t = tick * 0.5
        meter.sample(t, int(10 * t) if t <= 10 else 100 + int(100 * (t - 10)))
    assert meter.recent() == pytest.approx(100.0)
    assert meter.overall() == pytest.approx(1100 / 20)
    assert meter.eta(1600) == pytest.approx(5.0)


def test_a_run_younger_than_the_window_is_measured_from_its_start() -> None:
    meter = RateMeter(start=0.0)
    meter.sample(0.25, 0)
    meter.sample(0.5, 360)  # 72% of 500 in half a second: not zero
    assert meter.recent() == pytest.approx(720.0)


def test_calls_slower_than_the_window_do_not_read_as_zero_between_completions() -> None:
    meter = RateMeter(start=0.0, window=5.0, min_items=5)
    for n in range(1, 7):  # one item every 20 s
        meter.sample(20.0 * n, n)
    meter.sample(130.0, 6)  # 10 s after the last one
    assert meter.recent() == pytest.approx(5 / (130.0 - 20.0))
    assert meter.eta(10) == pytest.approx(4 / (5 / 110))


def test_a_stalled_run_decays_towards_zero() -> None:
    meter = RateMeter(start=0.0, window=5.0, min_items=5)
    for tick in range(1, 11):
        meter.sample(float(tick), 10 * tick)
    rates = []
    for later in (20.0, 100.0, 1000.0):
        meter.sample(later, 100)
        rates.append(meter.recent())
    assert rates == sorted(rates, reverse=True) and 0 < rates[-1] < 1


def test_memory_stays_bounded_over_a_long_run() -> None:
    meter = RateMeter(start=0.0, window=5.0, min_items=5)
    for tick in range(1, 100_001):
        meter.sample(tick * 0.25, tick)
    assert meter.recent() == pytest.approx(4.0)
    assert len(meter._changes) <= 5.0 / 0.25 + 2


def test_eta_is_zero_when_everything_is_done_and_none_without_a_total() -> None:
    meter = RateMeter(start=0.0)
    meter.sample(1.0, 10)
    assert meter.eta(10) == 0.0
    assert meter.eta(None) is None


@pytest.mark.parametrize(
    ("per_second", "text"),
    [
        (None, "-/s"),
        (0.0, "0/s"),
        (3815.8, "3,816/s"),
        (4712.0, "4,712/s"),
        (12.34, "12.3/s"),
        (1.0, "1.0/s"),
        (0.5, "30.0/min"),
        (1 / 60, "1.0/min"),
        (1 / 3600, "1.0/h"),
        (1e-9, "<0.1/h"),
    ],
)
def test_format_rate_never_prints_a_positive_rate_as_zero(
    per_second: float | None, text: str
) -> None:
    assert format_rate(per_second) == text


def test_overall_rate_text_is_labelled_for_summaries() -> None:
    assert overall_rate(3816, 1.0) == 3816.0
    assert overall_rate(5, 0.0) is None
    assert overall_rate_text(3816, 1.0) == "3,816/s overall"
    assert overall_rate_text(20, 3.05) == "6.6/s overall"


def test_format_duration() -> None:
    assert format_duration(None) == "-:--:--"
    assert format_duration(0.4) == "0:00:00"
    assert format_duration(65.2) == "0:01:05"
    assert format_duration(3 * 3600 + 7) == "3:00:07"


def test_the_http_summary_gives_the_same_overall_rate_labelled() -> None:
    from fanout.http._summary import Summary

    summary = Summary(requests=20)
    summary.done = summary.ok = 20
    assert summary.render(3.05).splitlines()[0] == (
        f"done: 20 requests in 3.05s ({overall_rate_text(20, 3.05)}): 20 ok, 0 failed, 0 retries"
    )
    assert "(6.6/s overall)" in summary.render(3.05)
