"""The orchestrator's promises, checked in every mode."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import core_jobs as jobs
import pytest

import fanout
from fanout import Result

MODES = ["sequential", "thread", "async", "process"]


@pytest.mark.parametrize("mode", MODES)
def test_every_item_yields_exactly_one_result_in_input_order(mode: str) -> None:
    results = fanout.map(jobs.fail_on_odd, range(500), mode=mode, concurrency=4)  # type: ignore[arg-type]
    assert [r.index for r in results] == list(range(500))
    assert [r.item for r in results] == list(range(500))
    assert all(r.ok == (r.index % 2 == 0) for r in results)
    odd = results[7]
    assert isinstance(odd.error, ValueError) and "odd 7" in str(odd.error)
    assert results[8].value == 8 and results[8].attempts == 1


@pytest.mark.parametrize("mode", MODES)
def test_async_functions_are_awaited_in_every_mode(mode: str) -> None:
    results = fanout.map(jobs.adouble, range(50), mode=mode)  # type: ignore[arg-type]
    assert [r.value for r in results] == [2 * i for i in range(50)]


def test_auto_mode_picks_async_for_coroutines_and_threads_otherwise() -> None:
    seen: list[str] = []

    def sync_fn(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x

    fanout.map(sync_fn, range(3))
    assert all(name.startswith("fanout-thread") for name in seen)

    async def async_fn(x: int) -> str:
        return threading.current_thread().name

    names = {r.value for r in fanout.map(async_fn, range(3))}
    assert names == {"fanout-loop"}


def test_unordered_yields_in_completion_order() -> None:
    delays = [0.4, 0.2, 0.0]

    def wait(d: float) -> float:
        time.sleep(d)
        return d

    results = list(fanout.imap(wait, delays, mode="thread", concurrency=3, ordered=False))
    assert [r.item for r in results] == [0.0, 0.2, 0.4]
    assert [r.index for r in results] == [2, 1, 0]


def test_imap_over_an_infinite_generator_pulls_lazily() -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    stream = fanout.imap(jobs.double, numbers(), mode="thread", concurrency=4)
    first = [r.value for r in itertools.islice(stream, 100)]
    assert first == [2 * i for i in range(100)]
    stream.close()  # type: ignore[attr-defined]
    # backpressure: the run took a bounded window of items, not the whole stream
    assert pulled < 100 + 100_000


def test_slow_consumer_bounds_items_taken() -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield i

    stream = fanout.imap(jobs.double, numbers(), mode="async", concurrency=8)
    next(stream)
    time.sleep(0.3)  # let the run fill its window while we do not consume
    snapshot = pulled
    stream.close()  # type: ignore[attr-defined]
    assert snapshot < 200_000  # a window, far below the 10M items offered


def test_errors_raise_cancels_pending_work_and_raises_the_first_failure() -> None:
    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        if x == 3:
            raise KeyError("three")
        time.sleep(0.01)
        return x

    with pytest.raises(KeyError, match="three"):
        fanout.map(work, range(10_000), mode="thread", concurrency=2, errors="raise")
    assert len(started) < 10_000


def test_retries_count_attempts_and_recover() -> None:
    failures = {i: 2 for i in range(0, 20, 5)}
    lock = threading.Lock()

    def flaky(x: int) -> int:
        with lock:
            if failures.get(x, 0) > 0:
                failures[x] -= 1
                raise ConnectionError(f"flaky {x}")
        return x

    results = fanout.map(flaky, range(20), mode="thread", retries=2, backoff=0.001)
    assert all(r.ok for r in results)
    assert [r.attempts for r in results] == [3 if i % 5 == 0 else 1 for i in range(20)]
    again = fanout.map(flaky, [100], retries=0)
    assert again[0].ok


def test_retry_on_limits_what_is_retried() -> None:
    calls: list[int] = []

    def bad(x: int) -> int:
        calls.append(x)
        raise ValueError("not transient")

    results = fanout.map(bad, [1], retries=3, retry_on=(ConnectionError,), backoff=0.001)
    assert results[0].attempts == 1 and calls == [1]


def test_a_waiting_retry_holds_no_concurrency_slot() -> None:
    """With one slot, item 0's retry waits 0.5 s; items 1-9 must run meanwhile."""
    order: list[tuple[int, int]] = []
    attempts: dict[int, int] = {}

    class Later(Exception):
        retry_after = 0.5

    def work(x: int) -> int:
        attempts[x] = attempts.get(x, 0) + 1
        order.append((x, attempts[x]))
        if x == 0 and attempts[x] == 1:
            raise Later("come back later")
        return x

    results = fanout.map(work, range(10), mode="thread", concurrency=1, retries=1)
    assert all(r.ok for r in results)
    assert order[0] == (0, 1)
    assert order[-1] == (0, 2)  # the retry ran after every other item
    assert results[0].attempts == 2


def test_rate_limit_spaces_starts_evenly_across_workers_and_retries() -> None:
    """No 1 s window sees more than 20 starts at rate=20/s, retries included.

    Async calls start on the loop right after the limiter lets them, so the
    times recorded here are the starts the limiter paced.
    """
    starts: list[float] = []
    seen: set[int] = set()

    async def work(x: int) -> int:
        starts.append(time.monotonic())
        first = x not in seen
        seen.add(x)
        if x % 4 == 0 and first:
            raise ConnectionError("retry me")
        return x

    results = fanout.map(work, range(36), concurrency=8, rate="20/s", retries=1, backoff=0.001)
    assert all(r.ok for r in results)
    assert len(starts) == 45
    starts.sort()
    most = max(sum(1 for t in starts if s0 <= t < s0 + 1.0) for s0 in starts)
    assert most <= 20
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 1 / 20 * 0.98


def test_thread_timeout_marks_the_call_and_discards_its_late_value() -> None:
    def work(x: float) -> float:
        time.sleep(x)
        return x

    results = fanout.map(work, [0.0, 5.0, 0.0], mode="thread", timeout=0.3)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, fanout.CallTimeout)
    assert isinstance(results[1].error, TimeoutError)


def test_async_timeout_cancels_the_coroutine() -> None:
    cancelled: list[int] = []

    async def work(x: int) -> int:
        try:
            await asyncio.sleep(x)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    results = fanout.map(work, [0, 30, 0], timeout=0.2)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, fanout.CallTimeout)
    assert cancelled == [30]


def test_async_timeouts_share_one_timer_and_still_hit_each_late_call() -> None:
    # 300 calls on 50 workers; every 30th hangs. Each hung call must time out on
    # its own deadline while quick calls keep starting (and finishing) around it.
    async def work(x: int) -> int:
        await asyncio.sleep(30 if x % 30 == 7 else 0.001)
        return x

    async def main() -> tuple[list[fanout.Result[int]], int]:
        loop = asyncio.get_running_loop()
        timers = 0
        call_at = loop.call_at

        def counting_call_at(*args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            nonlocal timers
            timers += 1
            return call_at(*args, **kwargs)

        loop.call_at = counting_call_at  # type: ignore[method-assign]
        results = await fanout.amap(work, range(300), mode="async", concurrency=50,
                                    timeout=0.3)
        return results, timers

    start = time.monotonic()
    results, timers = asyncio.run(main())
    late = [r.index for r in results if not r.ok]
    assert late == [x for x in range(300) if x % 30 == 7]
    assert all(isinstance(results[i].error, fanout.CallTimeout) for i in late)
    assert all(0.29 <= results[i].elapsed < 1.0 for i in late)
    assert time.monotonic() - start < 5
    # asyncio.sleep makes a timer per call; the deadlines added only a few
    assert timers < 300 + 50


def test_a_call_that_swallows_its_timeout_is_still_a_timeout_and_the_run_goes_on() -> None:
    async def stubborn(x: int) -> int:
        if x == 1:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(30)
            await asyncio.sleep(0.05)
        return x

    results = fanout.map(stubborn, range(4), mode="async", timeout=0.2)
    assert [r.ok for r in results] == [True, True, True, True]
    assert [r.value for r in results] == [0, 1, 2, 3]


def test_cancelling_the_consumer_is_not_mistaken_for_a_timeout() -> None:
    started = asyncio.Event()

    async def slow(x: int) -> int:
        started.set()
        await asyncio.sleep(30)
        return x

    async def main() -> None:
        task = asyncio.ensure_future(fanout.amap(slow, range(3), mode="async", timeout=20))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), 10))


def test_sync_function_in_async_mode_runs_in_threads_without_blocking() -> None:
    jobs.reset_peak()
    results = fanout.map(jobs.blocking_track, [0.2] * 10, mode="async", concurrency=10)
    assert max(r.value for r in results) == 10


def test_sync_api_works_inside_a_running_event_loop() -> None:
    async def notebook_cell() -> list[int]:
        return [r.value for r in fanout.map(jobs.double, range(5))]

    assert asyncio.run(notebook_cell()) == [0, 2, 4, 6, 8]


def test_amap_and_aimap_run_on_the_callers_loop() -> None:
    async def main() -> tuple[list[int], list[int]]:
        loop_thread = threading.current_thread().name

        async def where(x: int) -> str:
            return threading.current_thread().name

        together = await fanout.amap(jobs.adouble, range(20), concurrency=5)
        streamed = [r.value async for r in fanout.aimap(jobs.adouble, range(20), ordered=False)]
        names = {r.value for r in await fanout.amap(where, range(3))}
        assert names == {loop_thread}
        return [r.value for r in together], sorted(streamed)

    together, streamed = asyncio.run(main())
    assert together == [2 * i for i in range(20)]
    assert streamed == [2 * i for i in range(20)]


def test_aimap_accepts_async_iterables() -> None:
    async def source():  # type: ignore[no-untyped-def]
        for i in range(30):
            yield i

    async def main() -> list[int]:
        return [r.value for r in await fanout.amap(jobs.adouble, source(), concurrency=4)]

    assert asyncio.run(main()) == [2 * i for i in range(30)]


def test_progress_bar_only_when_asked(capfd: pytest.CaptureFixture[str]) -> None:
    fanout.map(jobs.double, range(50))
    assert capfd.readouterr().err == ""
    fanout.map(jobs.fail_on_odd, range(50), progress=True)
    err = capfd.readouterr().err
    assert "50/50" in err and "25 failed" in err


def test_progress_details_add_the_callers_live_text(capfd: pytest.CaptureFixture[str]) -> None:
    looks = itertools.count(1)
    fanout.map(jobs.double, range(20), progress=True,
               progress_details=lambda: f"look {next(looks)}")
    final = capfd.readouterr().err.strip().splitlines()[-1]
    assert "finished 20/20" in final and final.endswith(f"look {next(looks) - 1}")


def test_result_objects_are_complete() -> None:
    (r,) = fanout.map(jobs.double, [21])
    assert isinstance(r, Result)
    assert (r.index, r.item, r.ok, r.value, r.error, r.attempts) == (0, 21, True, 42, None, 1)
    assert r.elapsed >= 0.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("items", [[], [7]])
def test_empty_and_single_item_inputs_end(mode: str, items: list[int]) -> None:
    results = fanout.map(jobs.double, items, mode=mode, concurrency=1, timeout=5)  # type: ignore[arg-type]
    assert [r.value for r in results] == [2 * x for x in items]

    async def main() -> list[int]:
        return [r.value async for r in fanout.aimap(jobs.adouble, iter(items), timeout=5)]

    assert asyncio.run(main()) == [2 * x for x in items]


def test_rate_limited_run_with_one_worker_ends() -> None:
    results = fanout.map(jobs.double, range(5), concurrency=1, rate="100/s")
    assert [r.value for r in results] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("timeout", [None, 60.0])
def test_graceful_stop_yields_every_finished_result(timeout: float | None) -> None:
    async def work(x: int) -> int:
        if x == 0:
            await asyncio.sleep(600)  # the head of line never finishes
        return x

    async def main() -> list[int]:
        stop = asyncio.Event()
        seen: list[int] = []

        async def stopper() -> None:
            await asyncio.sleep(0.3)
            stop.set()

        task = asyncio.ensure_future(stopper())
        async for r in fanout.aimap(work, range(10), concurrency=10, stop=stop,
                                    timeout=timeout):
            seen.append(r.index)
        await task
        return seen

    # ordered: items 1-9 wait behind item 0 in the reorder buffer, yet are kept;
    # item 0 was cancelled by the stop, which is not a timeout result
    assert asyncio.run(main()) == list(range(1, 10))


def test_thread_pool_threads_are_gone_when_map_returns() -> None:
    before = threading.active_count()
    fanout.map(time.sleep, [0.01] * 200, mode="thread", concurrency=200)
    assert threading.active_count() <= before + 1


def test_aimap_takes_an_async_iterable_lazily_and_in_order() -> None:
    pulled: list[int] = []

    async def numbers() -> AsyncIterator[int]:
        for i in itertools.count():
            pulled.append(i)
            await asyncio.sleep(0)
            yield i

    async def empty() -> AsyncIterator[int]:
        return
        yield  # pragma: no cover - makes this an async generator

    async def main() -> tuple[list[int], list[Result[int]]]:
        got = []
        async for r in fanout.aimap(jobs.adouble, numbers(), mode="async", concurrency=4):
            got.append(r.value)
            if len(got) == 50:
                break
        return got, await fanout.amap(jobs.adouble, empty(), mode="async")

    got, none = asyncio.run(main())
    assert got == [2 * i for i in range(50)]
    assert none == []
    assert len(pulled) < 2000  # within the window (1,536 here), not drained


def test_aimap_batches_yields_every_result_once_in_order_in_lists() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def collect() -> list[list[fanout.Result[Any]]]:
        return [batch async for batch in fanout.aimap_batches(double, range(1000), concurrency=7)]

    batches = asyncio.run(collect())
    flat = [r for batch in batches for r in batch]
    assert [r.index for r in flat] == list(range(1000))
    assert [r.value for r in flat] == [2 * i for i in range(1000)]
    assert all(isinstance(batch, list) and batch for batch in batches)
    assert len(batches) < 1000  # handed over in bursts, not one by one


@pytest.mark.parametrize("mode", ["async", "thread"])
def test_an_item_from_a_slow_async_source_never_waits_for_the_next_one(mode: str) -> None:
    # The source yields item k+1 only once the result of item k was handed out:
    # the run must never wait to fill a batch from it (tiny calls are batched).
    async def main() -> list[int]:
        handed_out = asyncio.Event()
        handed_out.set()

        async def source() -> AsyncIterator[int]:
            for i in range(300):
                await handed_out.wait()
                handed_out.clear()
                yield i

        got = []
        async for r in fanout.aimap(jobs.double, source(), mode=mode, concurrency=4):
            got.append(r.value)
            handed_out.set()
        return got

    got = asyncio.run(asyncio.wait_for(main(), 20))
    assert got == [2 * i for i in range(300)]


def test_a_call_that_hangs_does_not_hold_back_the_results_batched_before_it() -> None:
    # quick calls travel in batches; the one that hangs is in a batch with some of
    # them: their results must still come out while it hangs
    released = threading.Event()

    def work(x: int) -> object:
        return released.wait(30) if x == 200 else x

    got = []
    for result in fanout.imap(work, range(201), mode="thread", concurrency=1):
        got.append(result.value)
        if result.index == 199:
            released.set()
    assert got[:200] == list(range(200))
    assert got[200] is True  # released by the consumer, not by the wait's timeout
