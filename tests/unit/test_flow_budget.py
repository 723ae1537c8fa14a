"""Budgets by weight (fanout._budget) and the gate that applies every limit (fanout._flow.Flow),
on a fake clock: budget windows, corrections by ``fanout.charge``, ceilings, Retry-After,
exhaustion, and the live state for the progress display and the summaries."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fanout import ConfigError
from fanout._budget import Budget, charge, current_ticket, with_tickets
from fanout._flow import Flow
from fanout._limits import BUDGET_SAFETY, RATE_SAFETY
from fanout._quota import QuotaReport


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Refused(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("HTTP 429")
        self.status = 429
        self.retry_after = retry_after


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def ok(n: int = 1) -> Any:
    return [None] * n, [0.0] * n, None


def refused(retry_after: float | None = None) -> Any:
    return [None], [0.0], {0: Refused(retry_after)}


def starts_until(flow: Flow, clock: Clock, until: float, items: list[Any],
                 step: float = 0.0005) -> list[float]:
    """Start calls whenever the gate allows, ``step`` apart at most, until ``until``."""
    starts = []
    while clock.now < until:
        if flow.try_start(items):
            starts.append(clock.now)
            flow.release()
        clock.now += step
    return starts


def summed_in_window(starts: list[tuple[float, float]], window: float) -> float:
    best = 0.0
    for t, _ in starts:
        best = max(best, sum(c for s, c in starts if t <= s < t + window))
    return best


def test_a_budget_keeps_the_summed_cost_of_any_window_within_it_plus_one_call(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    costs = {"a": 40.0, "b": 10.0, "c": 25.0}
    flow = Flow(concurrency=100, budget=100.0, cost=costs.__getitem__, loop=loop, clock=clock)
    started: list[tuple[float, float]] = []
    names = list(costs) * 100
    while names and clock.now < 60:
        if flow.try_start([names[0]]):
            started.append((clock.now, costs[names.pop(0)]))
            flow.release()
        clock.now += 0.001
    assert summed_in_window(started, 1.0) <= 100.0 + max(costs.values())
    assert summed_in_window(started, 5.0) <= 500.0 + max(costs.values())
    # and it is spent: about the budget per second
    spent = sum(c for t, c in started if t < 10.0)
    assert spent == pytest.approx(1000.0 / BUDGET_SAFETY, rel=0.06)


def test_charge_corrects_the_budget_from_inside_a_call_on_a_thread(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    flow = Flow(concurrency=10, budget=100.0, cost=lambda item: 50.0, loop=loop, clock=clock)
    seen: list[bool] = []

    def call(item: Any) -> None:
        seen.append(charge(150.0))  # it cost 100 more than estimated

    wrapped = flow.wrap(call, is_async=False, runs_here=True)
    assert flow.try_start(["x"])
    thread = threading.Thread(target=wrapped, args=("x",))
    thread.start()
    thread.join()
    assert seen == [True]
    assert not flow.try_start(["x"])
    clock.now = 0.5 * BUDGET_SAFETY + 0.001  # the estimate alone would allow it now
    assert not flow.try_start(["x"])
    clock.now = 1.5 * BUDGET_SAFETY + 0.001  # the real cost: 150 at 100/s
    assert flow.try_start(["x"])
    assert flow.state()["budget_corrected"] == 100.0


def test_charge_in_a_coroutine_and_twice_in_one_call_counts_the_last(
    loop: asyncio.AbstractEventLoop,
) -> None:
    flow = Flow(concurrency=10, budget=100.0, cost=lambda item: 50.0, loop=loop, clock=Clock())

    async def call(item: Any) -> bool:
        assert current_ticket() is not None and current_ticket().item == item  # type: ignore[union-attr]
        charge(80.0)
        return charge(20.0)

    assert loop.run_until_complete(flow.wrap(call, is_async=True, runs_here=True)("y"))
    assert flow.state()["budget_corrected"] == -30.0
    assert current_ticket() is None


def test_charge_outside_a_costed_call_does_nothing_and_bad_values_are_refused() -> None:
    assert charge(10.0) is False
    budget = Budget(10.0)

    class Run:
        def correct(self, delta: float) -> None:
            budget.correct(delta)

        def cost_of_item(self, item: Any) -> float:
            return 1.0

    def call(item: Any) -> None:
        charge(-1.0)

    with pytest.raises(ConfigError, match=r"fanout.charge\(actual\) must be a number >= 0"):
        with_tickets(call, Run(), is_async=False)("z")


def test_a_process_mode_call_gets_no_ticket(loop: asyncio.AbstractEventLoop) -> None:
    flow = Flow(concurrency=2, budget=10.0, cost=len, loop=loop, clock=Clock())
    assert flow.wrap(len, is_async=False, runs_here=False) is len
    assert Flow(concurrency=2, loop=loop).wrap(len, is_async=False, runs_here=True) is len


def test_a_cost_function_that_fails_names_the_item(loop: asyncio.AbstractEventLoop) -> None:
    flow = Flow(concurrency=2, budget=10.0, cost=lambda item: item["tokens"], loop=loop,
                clock=Clock())
    with pytest.raises(ConfigError, match=r"cost\(\{'x': 1\}\) raised KeyError"):
        flow.try_start([{"x": 1}])
    with pytest.raises(ConfigError, match=r"cost\('a'\) must be a number >= 0"):
        Flow(concurrency=2, budget=10.0, cost=lambda item: -1, loop=loop,
             clock=Clock()).try_start(["a"])


def test_the_rate_and_the_concurrency_are_ceilings_never_exceeded(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    flow = Flow(concurrency=3, rate=20.0, loop=loop, clock=clock)
    starts = starts_until(flow, clock, 10.0, ["i"])
    assert len(starts) == pytest.approx(200 / RATE_SAFETY, abs=2)
    held = []
    for _ in range(10):  # none released: the concurrency binds after 3
        clock.now += 0.1
        held.append(flow.try_start(["i"]))
    assert held == [True] * 3 + [False] * 7 and flow.running == 3


def test_a_retry_after_delays_only_its_own_request(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    flow = Flow(concurrency=4, loop=loop, clock=clock)
    assert flow.try_start(["a"])
    clock.now = 0.01
    flow.observe(0.0, refused(retry_after=30.0))
    flow.release()
    assert flow.try_start(["b"])  # the others go on at once
    assert flow.state()["overload_signals"] == 1 and flow.state()["pauses"] == 0


def test_an_exhausted_limit_pauses_every_start_until_the_retry_after(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    flow = Flow(concurrency=64, loop=loop, clock=clock)
    for _ in range(16):
        assert flow.try_start(["a"])
    clock.now = 0.01
    for _ in range(16):
        flow.observe(0.0, refused(retry_after=2.0))
        flow.release()
    assert not flow.try_start(["a"])
    assert "waiting 2.0s for the server" in flow.details()
    clock.now = 2.02
    assert flow.try_start(["a"])
    state = flow.state()
    assert state["pauses"] == 1 and state["paused_s"] == 2.0 and state["overload_signals"] == 16


def test_details_and_state_say_what_binds(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    flow = Flow(concurrency=8, rate=100.0, loop=loop, clock=clock)
    assert flow.details() == "8 at once · max 97.1/s"
    state = flow.state()
    assert state["concurrency"] == 8 and state["rate"] == pytest.approx(100 / RATE_SAFETY, 1e-3)
    assert state["overload_signals"] == 0 and state["auto_concurrency"] is False
    auto = Flow(concurrency=50, auto=True, loop=loop, clock=clock)
    assert auto.details() == "4 at once (auto)"
    assert auto.state()["concurrency_max"] == 50


def test_server_limits_known_in_advance_pace_the_first_starts_until_the_server_reports(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    flow = Flow(concurrency=100, cost=lambda item: 100.0, loop=loop, clock=clock,
                server_limits=[("requests", 10.0), ("tokens", 500.0)])
    # the buckets start empty: 500 tokens a second at most (5 calls of 100), never a burst
    assert flow.state()["server_limits"] == {}  # nothing heard from the server yet
    starts = starts_until(flow, clock, 2.0, ["x"])
    assert 8 <= len(starts) <= 10
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.2
    # the server's first report replaces the guess: 3,000 tokens are left, go at once
    flow.report([QuotaReport("tokens", "continuous", 3000.0, 1.0, 30_000.0, 60.0)],
                started=clock.now)
    burst = starts_until(flow, clock, clock.now + 0.01, ["x"])
    # now the requests limit binds: what flowed in over 2 s (10/s), less the 9 started
    assert 9 <= len(burst) <= 11
    assert flow.state()["server_limits"]["tokens/continuous"]["remaining"] == 3000.0
