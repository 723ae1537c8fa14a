"""mode="auto" measures the first calls, then runs the rest in the right mode."""

from __future__ import annotations

import asyncio
import logging
import threading

import auto_jobs as jobs
import pytest

import fanout


def _chosen(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "fanout" and r.levelno == logging.INFO]


def test_cpu_bound_calls_go_to_processes_and_it_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="fanout"):
        results = fanout.map(jobs.spin, range(24))
    assert results.values() == [2 * x for x in range(24)]
    info = fanout.last_run()
    assert info is not None and info.mode == "process"
    assert info.mode_reason.startswith("process: calls are")
    assert "% CPU" in info.mode_reason
    assert _chosen(caplog) == [f"fanout.map(spin): {info.mode_reason}"]


def test_sleeping_calls_stay_on_threads() -> None:
    results = fanout.map(jobs.nap, range(40))
    assert results.values() == [2 * x for x in range(40)]
    info = fanout.last_run()
    assert info is not None and info.mode == "thread"
    assert "they mostly wait" in info.mode_reason


def test_tiny_calls_on_large_items_stay_on_threads_in_batches() -> None:
    # items that cost more to send to a worker than the call: threads, warm workers or not
    fanout.map(jobs.tiny, range(64), mode="process")
    results = fanout.map(jobs.tiny_len, ["x" * 2_000] * 20_000)
    assert results.values() == [2_000] * 20_000
    info = fanout.last_run()
    assert info is not None and info.mode == "thread"
    assert info.mode_reason.startswith("thread: tiny calls")


def test_tiny_calls_on_small_items_go_to_warm_workers_exactly_once_in_order() -> None:
    fanout.map(jobs.tiny, range(64), mode="process")  # a program that used processes before
    for ordered in (True, False):
        results = fanout.map(jobs.tiny, range(50_000), ordered=ordered)
        assert sorted(r.value for r in results) == [2 * x for x in range(50_000)]
        assert sorted(r.index for r in results) == list(range(50_000))
        if ordered:
            assert results.values() == [2 * x for x in range(50_000)]
        info = fanout.last_run()
        assert info is not None and info.mode == "process"
        assert "tiny calls" in info.mode_reason and "warm worker processes" in info.mode_reason


def test_a_coroutine_function_runs_as_coroutines() -> None:
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x

    fanout.map(fetch, range(5))
    info = fanout.last_run()
    assert info is not None and (info.mode, info.mode_reason) == (
        "async", "async: a coroutine function")


def test_an_unpicklable_cpu_bound_function_stays_on_threads_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = threading.Lock()  # a closure over a lock cannot be sent to another process

    def spin_locked(x: int) -> int:
        with lock:
            return jobs.spin(x)

    with caplog.at_level(logging.INFO, logger="fanout"):
        results = fanout.map(spin_locked, range(12))
    assert results.values() == [2 * x for x in range(12)]
    info = fanout.last_run()
    assert info is not None and info.mode == "thread"
    assert "cannot go to worker processes" in info.mode_reason
    assert _chosen(caplog) == [f"fanout.map(spin_locked): {info.mode_reason}"]


@pytest.mark.parametrize("mode", ["thread", "sequential"])
def test_an_explicit_mode_is_never_overridden(mode: str) -> None:
    fanout.map(jobs.spin, range(6), mode=mode)
    info = fanout.last_run()
    assert info is not None and (info.mode, info.mode_reason) == (mode, f"{mode}: asked for")


@pytest.mark.parametrize("ordered", [True, False])
def test_the_switch_keeps_exactly_one_result_per_item(ordered: bool) -> None:
    results = list(fanout.imap(jobs.flaky_spin, range(30), ordered=ordered, retries=1,
                               backoff=0))
    info = fanout.last_run()
    assert info is not None and info.mode == "process"
    assert sorted(r.index for r in results) == list(range(30))
    if ordered:
        assert [r.index for r in results] == list(range(30))
    failed = {r.index for r in results if not r.ok}
    assert failed == {3, 8}
    assert all(r.attempts == 2 for r in results if not r.ok)
    assert all(r.value == 2 * r.index for r in results if r.ok)


def test_the_users_concurrency_is_kept_in_the_chosen_mode() -> None:
    fanout.map(jobs.spin, range(24), concurrency=3)
    info = fanout.last_run()
    assert info is not None and (info.mode, info.concurrency) == ("process", 3)
    fanout.map(jobs.spin, range(6), concurrency=1)
    info = fanout.last_run()
    assert info is not None and (info.mode, info.concurrency) == ("thread", 1)
    assert "with concurrency=1" in info.mode_reason
