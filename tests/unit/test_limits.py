import itertools

import pytest

from fanout import ConfigError, parse_rate
from fanout._limits import RATE_CATCH_UP, RATE_SAFETY, Pacer


@pytest.mark.parametrize(
    ("spec", "per_second"),
    [("20/s", 20.0), ("600/min", 10.0), ("3600/h", 1.0), ("5/2s", 2.5), ("1.5/sec", 1.5),
     (" 100 / minute ", 100 / 60), (7, 7.0), (0.5, 0.5), ("86400/day", 1.0)],
)
def test_parse_rate_understands_common_forms(spec: str | float, per_second: float) -> None:
    assert parse_rate(spec) == pytest.approx(per_second)


@pytest.mark.parametrize("spec", ["0/s", "-1/s", "abc", "10/fortnight", "10", 0, -3, True, "1/0s"])
def test_parse_rate_rejects_nonsense_with_the_value_in_the_message(spec: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rate(spec)  # type: ignore[arg-type]
    assert repr(spec) in str(info.value)


def _max_in_window(starts: list[float], window: float) -> int:
    best = 0
    j = 0
    for i, start in enumerate(starts):
        while starts[j] <= start - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _paced(pacer: Pacer, n: int, lateness: float = 0.0, cost: float = 1.0) -> list[float]:
    """Start times of ``n`` calls that each start as soon as allowed, ``lateness`` late."""
    now, starts = 0.0, []
    for _ in range(n):
        now = max(now, pacer.ready_at()) + lateness
        pacer.take(now, cost)
        starts.append(now)
    return starts


@pytest.mark.parametrize("rate", [1.0, 5.0, 20.0, 100.0, 400.0, 600 / 60])
@pytest.mark.parametrize("lateness", [0.0, 0.0007, 0.004])
@pytest.mark.parametrize("catch_up", [1.0, RATE_CATCH_UP])
def test_pacer_never_starts_more_than_the_limit_in_any_window_of_its_period(
    rate: float, lateness: float, catch_up: float
) -> None:
    pacer = Pacer(rate, safety=RATE_SAFETY, catch_up=catch_up)
    starts = _paced(pacer, int(rate * 5) + 5, lateness)
    assert _max_in_window(starts, 1.0) <= rate


def test_pacer_keeps_its_schedule_when_starts_are_a_little_late() -> None:
    """The event loop wakes a waiter a millisecond late: the pace must not slow down by that."""
    starts = _paced(Pacer(400.0, safety=RATE_SAFETY), 401, lateness=0.001)
    assert starts[-1] - starts[0] == pytest.approx(400 * RATE_SAFETY / 400.0, rel=0.01)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) > 0


@pytest.mark.parametrize("lateness", [0.0, 0.0001, 0.002, 0.004])
def test_the_rate_ceiling_stays_evenly_spaced_when_starts_are_late(lateness: float) -> None:
    starts = _paced(Pacer(20.0, safety=RATE_SAFETY, catch_up=RATE_CATCH_UP), 60, lateness)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.98 / 20


@pytest.mark.parametrize("rate", [20.0, 100.0, 400.0])
def test_a_start_later_than_the_ceiling_makes_up_costs_only_the_excess(rate: float) -> None:
    """Wake-ups come up to a millisecond late (epoll rounds its timeout up): at 100/s the
    ceiling may make up 0.46 ms of a start's delay; a start 1 ms late must cost the pace
    the other 0.54 ms, not the whole millisecond (that was 10% under the limit)."""
    lateness = 0.001
    step = RATE_SAFETY / rate
    starts = _paced(Pacer(rate, safety=RATE_SAFETY, catch_up=RATE_CATCH_UP), 200, lateness)
    mean_gap = (starts[-1] - starts[1]) / (len(starts) - 2)  # the first start sets the schedule
    assert mean_gap <= step + max(0.0, lateness - RATE_CATCH_UP * step) + 1e-9
    assert _max_in_window(starts, 1.0) <= rate


def test_pacer_spaces_starts_by_their_cost() -> None:
    pacer = Pacer(100.0)  # 100 units a second
    assert pacer.ready_at() == float("-inf")  # the first start goes at once
    pacer.take(0.0, 50.0)
    assert pacer.ready_at() == pytest.approx(0.5)
    pacer.take(0.5, 10.0)
    assert pacer.ready_at() == pytest.approx(0.6)


def test_pacer_adjust_charges_more_and_gives_back_without_banking_credit() -> None:
    pacer = Pacer(100.0)
    pacer.take(0.0, 50.0)  # next at 0.5
    pacer.adjust(0.1, 30.0)  # it really cost 80
    assert pacer.ready_at() == pytest.approx(0.8)
    pacer.adjust(0.1, -60.0)  # no: 20
    assert pacer.ready_at() == pytest.approx(0.2)
    pacer.adjust(0.3, -20.0)  # and even less: the schedule never moves before now
    assert pacer.ready_at() == pytest.approx(0.2)
