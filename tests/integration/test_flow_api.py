"""Flow control through the public API: budgets by weight with fanout.charge in every mode,
a limit of the user's own function found from its ``throttle`` exceptions, concurrency="auto",
and the keywords' checks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import fanout
from fanout import ConfigError


def summed_in_window(starts: list[tuple[float, float]], window: float) -> float:
    starts = sorted(starts)
    best = 0.0
    for i, (t, _) in enumerate(starts):
        best = max(best, sum(c for s, c in starts[i:] if s < t + window))
    return best


def test_a_budget_keeps_every_window_within_it_across_threads_and_retries() -> None:
    started: list[tuple[float, float]] = []
    lock = threading.Lock()
    failed_once: set[int] = set()

    def work(n: int) -> int:
        with lock:
            started.append((time.monotonic(), float(n)))
            first = n not in failed_once
            failed_once.add(n)
        if first and n % 5 == 0:
            raise ConnectionError("flaky")  # retried: its start is charged again
        return n

    costs = [10, 20, 30, 40] * 8
    results = fanout.map(work, costs, mode="thread", concurrency=8, budget="400/s",
                         cost=float, retries=1, backoff=0.01)
    assert all(r.ok for r in results)
    assert summed_in_window(started, 1.0) <= 400 + 40


def test_charge_corrects_the_budget_in_thread_and_async_mode() -> None:
    started: list[tuple[float, float]] = []

    def work(n: int) -> bool:
        started.append((time.monotonic(), 3.0 * n))
        return fanout.charge(3.0 * n)  # it really cost three times the estimate

    results = fanout.map(work, [10] * 30, mode="thread", concurrency=4, budget="600/s",
                         cost=float)
    assert [r.value for r in results] == [True] * 30
    assert summed_in_window(started, 1.0) <= 600 + 30

    async def awork(n: int) -> bool:
        return fanout.charge(n / 2)

    async def main() -> list[Any]:
        return [r.value for r in await fanout.amap(awork, [4, 8], budget="100/s", cost=float)]

    assert asyncio.run(main()) == [True, True]


def charge_in_a_worker(n: int) -> bool:
    return fanout.charge(float(n))


def test_charge_in_process_mode_does_nothing_and_says_so() -> None:
    results = fanout.map(charge_in_a_worker, [1, 2], mode="process", budget="100/s", cost=float)
    assert [r.value for r in results] == [False, False]
    assert fanout.charge(1.0) is False


class Throttled(Exception):
    throttle = True

    def __init__(self) -> None:
        super().__init__("slow down")
        self.retry_after = 0.5


def test_a_limit_of_the_users_own_function_is_found_from_its_throttle_exceptions() -> None:
    """A function that takes 100 calls in any 0.5 s and says ``throttle`` beyond: the run
    finds the pace; refusals stay a small share of the calls."""
    accepted: list[float] = []
    refused = 0

    async def call(i: int) -> int:
        nonlocal refused
        now = time.monotonic()
        while accepted and accepted[0] <= now - 0.5:
            accepted.pop(0)
        if len(accepted) >= 100:
            refused += 1
            raise Throttled
        accepted.append(now)
        await asyncio.sleep(0.01)
        return i

    async def main() -> list[Any]:
        return list(await fanout.amap(call, range(600), concurrency=32, retries=10))

    results = asyncio.run(main())
    assert all(r.ok for r in results)
    assert refused <= 0.2 * 600


def test_auto_concurrency_stays_under_its_ceiling_and_below_the_queue() -> None:
    running = 0
    busiest = 0

    async def call(i: int) -> int:
        nonlocal running, busiest
        running += 1
        busiest = max(busiest, running)
        # a server with room for 8 at once: beyond, each call waits for the others
        await asyncio.sleep(0.01 * max(1.0, running / 8))
        running -= 1
        return i

    async def main() -> list[Any]:
        return list(await fanout.amap(call, range(800), concurrency="auto:40"))

    assert all(r.ok for r in asyncio.run(main()))
    assert 8 <= busiest <= 40


@pytest.mark.parametrize(("options", "needle"), [
    ({"concurrency": "auto:0"}, "concurrency='auto:0'"),
    ({"concurrency": "fast"}, "'auto' or 'auto:N'"),
    ({"budget": "100/s"}, "needs cost=fn"),
    ({"budget": "0/s", "cost": len}, "budget must be > 0 cost units per second"),
    ({"cost": 3}, "cost must be a function"),
])
def test_flow_keywords_are_checked_before_anything_runs(
    options: dict[str, Any], needle: str
) -> None:
    calls: list[int] = []
    with pytest.raises(ConfigError) as info:
        fanout.map(calls.append, [1], **options)
    assert needle in str(info.value)
    assert calls == []


def test_tpm_is_the_budget_keyword_peers_would_look_for() -> None:
    with pytest.raises(TypeError, match=r"did you mean budget=\?"):
        fanout.map(len, ["a"], tpm=100)  # type: ignore[call-arg]


def test_server_limits_pace_the_starts_from_the_first_one() -> None:
    started: list[float] = []

    async def work(n: int) -> int:
        started.append(time.monotonic())
        return n

    async def main() -> list[Any]:
        return await fanout.amap(work, range(12), concurrency=12, cost=lambda n: 10.0,
                                 server_limits={"requests": "6000/min", "tokens": "3000/s"})

    assert [r.value for r in asyncio.run(main())] == list(range(12))
    # 100 calls a second at most, no burst at the start: never faster than that (but
    # for the pacer's slack: a start up to 5 ms late keeps the schedule)
    assert started[-1] - started[0] >= 11 / 100 - 0.005
