"""Fault draws and the mock's settings: shares, reproducibility, parsing, validation."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fanout.mock._config import MockConfig, make_config, parse_limit_change
from fanout.mock._faults import FaultDraw


def tally(draw: FaultDraw, count: int) -> Counter[str | None]:
    return Counter(draw.draw(f"id-{n}", 1)[0] for n in range(count))


def test_fault_shares_are_about_the_configured_ones() -> None:
    config = MockConfig(
        throttle_rate=0.15, error_rate=0.05, unavailable_rate=0.03, reset_rate=0.02, seed=7
    )
    seen = tally(FaultDraw(config), 20_000)
    # sd of a 15% share of 20,000 is ~50: these bounds are ~6 sd wide
    assert 2700 <= seen["throttle"] <= 3300
    assert 850 <= seen["error"] <= 1150
    assert 480 <= seen["unavailable"] <= 720
    assert 300 <= seen["reset"] <= 500


def test_a_draw_depends_only_on_seed_id_and_attempt() -> None:
    config = MockConfig(throttle_rate=0.5, jitter=0.1, seed=1)
    first, again = FaultDraw(config), FaultDraw(config)
    keys = [(f"id-{n}", attempt) for n in range(50) for attempt in (1, 2, 3)]
    assert [first.draw(*k) for k in keys] == [again.draw(*k) for k in reversed(keys)][::-1]
    other = FaultDraw(MockConfig(throttle_rate=0.5, seed=2))
    assert [first.draw(*k)[0] for k in keys] != [other.draw(*k)[0] for k in keys]
    # attempts of one id are drawn independently
    assert len({first.draw("id-0", attempt)[0] for attempt in range(1, 40)}) == 2


def test_jitter_spread_is_within_minus_one_and_one() -> None:
    draw = FaultDraw(MockConfig(jitter=0.05, seed=3))
    spreads = [draw.draw(f"k{n}", 1)[1] for n in range(2000)]
    assert all(-1.0 <= s < 1.0 for s in spreads)
    assert min(spreads) < -0.9 and max(spreads) > 0.9
    assert draw.active


def test_shares_adding_up_past_one_leave_the_later_faults_what_is_left() -> None:
    draw = FaultDraw(MockConfig(error_rate=1.0, reset_rate=1.0, seed=0))
    assert set(tally(draw, 500)) == {"error"}
    assert not FaultDraw(MockConfig()).active


def test_make_config_reads_durations_rates_and_schedule_forms() -> None:
    config = make_config(
        latency="50ms",
        bucket="1s",
        rate_limit="10/2s",
        limit_schedule=["20s:1", ("10s", 0.5), (15.0, 0.75)],
        rpm=60,
    )
    assert config.latency == pytest.approx(0.05)
    assert config.bucket == 1.0
    assert config.rate_limit == (10, 2.0)
    assert config.limit_schedule == ((10.0, 0.5), (15.0, 0.75), (20.0, 1.0))
    assert make_config(rate_limit=2.5).rate_limit == (1, 0.4)


def test_the_api_key_never_shows_in_the_config_repr() -> None:
    assert "sk-secret" not in repr(MockConfig(api_key="sk-secret"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"throttle_rate": 1.5}, "throttle_rate must be a probability"),
        ({"unavailable_rate": -0.1}, "unavailable_rate must be a probability"),
        ({"rpm": 0}, "rpm must be a whole number >= 1"),
        ({"tpm": 2.5}, "tpm must be a whole number >= 1"),
        ({"capacity": 0}, "capacity must be a whole number >= 1"),
        ({"max_faults": -1}, "max_faults must be a whole number >= 0"),
        ({"bucket": 0.0}, "bucket must be a number of seconds > 0"),
        ({"limit_schedule": ((1.0, 0.0),)}, "limit_schedule must be"),
        ({"limit_schedule": ((2.0, 1.0), (1.0, 0.5))}, "in time order"),
        ({"ratelimit_headers": "draft"}, "ratelimit_headers must be one of none, ietf, openai"),
        ({"throttle_retry_after": -1.0}, "throttle_retry_after must be"),
        ({"api_key": ""}, "api_key must be a non-empty string"),
    ],
)
def test_bad_settings_are_refused_with_their_name_and_value(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MockConfig(**settings)


@pytest.mark.parametrize("text", ["10s", "soon:0.5", "10s:zero", "10s:0", "10s:-1"])
def test_a_bad_limit_change_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="limit change"):
        parse_limit_change(text)
