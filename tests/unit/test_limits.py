import asyncio
import itertools
import math

import pytest

from fanout import ConfigError, parse_rate
from fanout._limits import AdaptiveCap, RateLimiter


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _max_in_window(starts: list[float], window: float) -> int:
    best = 0
    j = 0
    for i, start in enumerate(starts):
        while starts[j] <= start - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_rate_limiter_never_starts_more_than_the_limit_in_any_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(20):
            await limiter.acquire()
            starts.append(clock())

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(8)))

    asyncio.run(main())
    starts.sort()
    assert len(starts) == 160
    assert _max_in_window(starts, 1.0) <= 10
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 1e-9
    # paced, not slowed: the whole batch takes about 16 s of fake time
    assert starts[-1] == pytest.approx(159 * 0.1 * 1.03, rel=1e-6)


def test_rate_limiter_first_call_is_immediate_and_throttle_pauses_everyone() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    assert not limiter.active

    async def main() -> list[float]:
        await limiter.acquire()
        first = clock()
        limiter.throttle(5.0)
        await limiter.acquire()
        return [first, clock()]

    first, second = asyncio.run(main())
    assert first == 0.0
    assert second == pytest.approx(5.0)
    assert limiter.active


def test_throttle_widens_spacing_then_success_recovers_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, sleep=clock.sleep)

    async def gap() -> float:
        await limiter.acquire()
        before = clock()
        await limiter.acquire()
        return clock() - before

    assert asyncio.run(gap()) == pytest.approx(0.0103)
    limiter.throttle(0.0)
    assert asyncio.run(gap()) == pytest.approx(0.0206)
    for _ in range(1000):
        limiter.notify_success()
    assert asyncio.run(gap()) == pytest.approx(0.0103)


def test_adaptive_cap_halves_on_throttle_and_grows_back() -> None:
    async def main() -> None:
        cap = AdaptiveCap(16)
        for _ in range(16):
            await cap.wait_can_start()
        cap.throttle()
        assert cap.cap == 8
        for _ in range(16):
            cap.notify_finished()
        for _ in range(8):
            await cap.wait_can_start()
        blocked = asyncio.ensure_future(cap.wait_can_start())
        await asyncio.sleep(0)
        assert not blocked.done()
        for _ in range(200):
            cap.notify_success()
        await asyncio.sleep(0)
        assert blocked.done()
        assert cap.cap == 16

    asyncio.run(main())


def test_unbounded_limiter_has_no_waits() -> None:
    limiter = RateLimiter(None)
    assert limiter._next_allowed() == -math.inf
