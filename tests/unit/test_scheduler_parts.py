"""The scheduler's parts, each on its own, on a fake clock: no sleeping, exact times."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from fanout._batching import BatchSizer
from fanout._deadlines import Deadlines
from fanout._input import Input
from fanout._reorder import Reorder
from fanout._result import Result
from fanout._retry import RetryScheduler


class FakeTimer:
    def __init__(self, clock: FakeClock, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time stands still until ``advance`` moves it, firing due timers in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.armed = 0
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeTimer:
        timer = FakeTimer(self, when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        self.armed += 1
        return timer

    def call_later(self, delay: float, callback: Callable[[], object], /) -> FakeTimer:
        return self.call_at(self.now + delay, callback)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = end

    @property
    def pending(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)


class Waiter:
    def __init__(self, name: str, log: list[tuple[str, float]], clock: FakeClock) -> None:
        self.name, self.log, self.clock = name, log, clock

    def cancel(self, msg: object = None, /) -> bool:
        self.log.append((self.name, self.clock.now))
        return True


# ------------------------------------------------------------------ deadlines
def test_each_late_call_is_cancelled_at_its_own_deadline_with_one_timer() -> None:
    clock = FakeClock()
    deadlines = Deadlines(clock)
    log: list[tuple[str, float]] = []
    a, b, c = (Waiter(n, log, clock) for n in "abc")
    deadlines.add(a, 1.0)
    clock.advance(0.25)
    deadlines.add(b, 1.0)
    clock.advance(0.25)
    deadlines.add(c, 1.0)
    assert clock.pending == 1  # one timer, for the earliest deadline
    assert deadlines.remove(b) is False  # b finished in time: not cancelled
    clock.advance(2.0)
    assert log == [("a", 1.0), ("c", 1.5)]
    assert deadlines.remove(a) is True  # its deadline had passed
    assert clock.pending == 0


def test_an_earlier_deadline_rearms_the_timer() -> None:
    clock = FakeClock()
    deadlines = Deadlines(clock)
    log: list[tuple[str, float]] = []
    slow, fast = Waiter("slow", log, clock), Waiter("fast", log, clock)
    deadlines.add(slow, 10.0)
    deadlines.add(fast, 1.0)
    clock.advance(20)
    assert log == [("fast", 1.0), ("slow", 10.0)]


def test_closing_the_deadlines_cancels_the_timer() -> None:
    clock = FakeClock()
    deadlines = Deadlines(clock)
    log: list[tuple[str, float]] = []
    deadlines.add(Waiter("a", log, clock), 1.0)
    deadlines.close()
    clock.advance(5)
    assert log == []


# -------------------------------------------------------------------- retries
def test_retries_become_due_after_their_delay_in_time_order() -> None:
    clock = FakeClock()
    woken: list[float] = []
    retries: RetryScheduler[str] = RetryScheduler(clock, lambda: woken.append(clock.now))
    retries.schedule("late", 3.0)
    retries.schedule("soon", 1.0)
    assert retries.waiting == 2 and retries.pop() is None
    clock.advance(1.5)
    assert retries.pop() == "soon" and retries.pop() is None
    assert retries.waiting == 1
    clock.advance(2.0)
    assert list(retries.due) == ["late"] and retries.waiting == 0
    assert woken == [1.0, 3.0]


def test_cancelled_retries_never_fire() -> None:
    clock = FakeClock()
    retries: RetryScheduler[int] = RetryScheduler(clock, lambda: None)
    for i in range(5):
        retries.schedule(i, 1.0 + i)
    retries.cancel()
    clock.advance(10)
    assert not retries.due and retries.waiting == 0


# ---------------------------------------------------------------------- reorder
def _results(first: int, n: int) -> list[Result[int]]:
    return [Result(i, i, i) for i in range(first, first + n)]


def test_the_reorder_buffer_releases_runs_in_input_order() -> None:
    reorder = Reorder(ordered=True)
    reorder.add(3, _results(3, 2))
    reorder.add(1, _results(1, 2))
    assert reorder.take() == []
    reorder.add(0, _results(0, 1))
    assert [r.index for r in reorder.take()] == [0, 1, 2, 3, 4]
    reorder.add(6, _results(6, 1))
    assert [r.index for r in reorder.salvage()] == [6]


def test_unordered_results_leave_as_they_finish() -> None:
    reorder = Reorder(ordered=False)
    reorder.add(5, _results(5, 1))
    reorder.add(0, _results(0, 2))
    assert [r.index for r in reorder.take()] == [5, 0, 1]


# ------------------------------------------------------------------------ input
def test_a_plain_iterable_is_taken_lazily_in_runs() -> None:
    pulled: list[int] = []

    def numbers() -> itertools.count[int]:
        return itertools.count()

    source = (pulled.append(i) or i for i in numbers())
    inp = Input(source)
    assert inp.length is None and inp.total is None
    assert inp.take_now(3) == (0, [0, 1, 2])
    assert inp.take_now(2) == (3, [3, 4])
    assert pulled == [0, 1, 2, 3, 4]


def test_the_end_of_a_sized_input_is_known() -> None:
    inp = Input([10, 11, 12])
    assert inp.total == 3
    assert inp.take_now(2) == (0, [10, 11]) and not inp.exhausted
    assert inp.take_now(2) == (2, [12]) and inp.exhausted
    assert inp.take_now(2) is None


def test_peek_keeps_the_first_item_in_front() -> None:
    async def main() -> None:
        inp = Input(iter([7, 8]))
        assert await inp.peek() == (7,)
        assert inp.take_now(5) == (0, [7, 8])
        assert await Input(iter([])).peek() == ()

    asyncio.run(main())


def test_concurrent_async_takes_get_disjoint_consecutive_runs() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(100):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[tuple[int, list[int]]]:
        inp = Input(numbers())
        assert await inp.peek() == (0,)
        runs: list[tuple[int, list[int]]] = []

        async def taker() -> None:
            while not inp.exhausted:
                runs.append(await inp.take(7))

        await asyncio.gather(*(taker() for _ in range(5)))
        assert inp.exhausted and inp.total == 100
        await inp.aclose()
        return runs

    runs = asyncio.run(main())
    seen = []
    for first, items in sorted(r for r in runs if r[1]):
        assert 1 <= len(items) <= 7
        assert items == list(range(first, first + len(items)))
        seen.extend(items)
    assert seen == list(range(100))


def test_an_async_take_returns_what_has_arrived_without_waiting_to_fill() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def slow() -> AsyncIterator[int]:
            yield 0
            await release.wait()
            yield 1

        inp = Input(slow())
        assert await asyncio.wait_for(inp.take(10), 1) == (0, [0])
        pending = asyncio.ensure_future(inp.take(10))
        await asyncio.sleep(0.01)
        assert not pending.done()  # nothing has arrived: it waits for one item
        release.set()
        assert await asyncio.wait_for(pending, 1) == (1, [1])
        assert await inp.take(10) == (2, []) and inp.exhausted
        await inp.aclose()

    asyncio.run(main())


def test_an_async_source_that_breaks_stops_the_takes_with_its_error() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 0
        raise OSError("the source broke")

    async def main() -> None:
        inp = Input(broken())
        assert await inp.take(5) == (0, [0])
        with pytest.raises(OSError, match="the source broke"):
            await inp.take(5)
        await inp.aclose()

    asyncio.run(main())


# --------------------------------------------------------------------- batching
def test_tiny_calls_grow_the_batch_by_doubling_up_to_the_target() -> None:
    sizer = BatchSizer(target=0.002, max_batch=1024, window=100_000, concurrency=2)
    sizes = []
    for _ in range(12):
        sizes.append(sizer.size)
        sizer.observe([1e-6] * sizer.size)
    assert sizes[:5] == [1, 2, 4, 8, 16]
    assert sizes[-1] == 1024  # capped by max_batch (the target alone would allow 2,000)


@pytest.mark.parametrize(("per_item", "expected"), [(0.01, 1), (0.0005, 4)])
def test_slow_calls_keep_small_batches(per_item: float, expected: int) -> None:
    sizer = BatchSizer(target=0.002, max_batch=1024, window=100_000, concurrency=2)
    for _ in range(10):
        sizer.observe([per_item] * sizer.size)
    assert sizer.size == expected


def test_a_batch_never_exceeds_a_fair_share_of_the_window() -> None:
    sizer = BatchSizer(target=1.0, max_batch=8192, window=2000, concurrency=4)
    for _ in range(20):
        sizer.observe([1e-7] * sizer.size)
    assert sizer.size == 250  # (window / 2) / concurrency
