"""``concurrency="auto"`` (fanout._concurrency.AutoLimit) against a modelled server that works
on ``capacity`` calls at once and queues the rest, on explicit times."""

from __future__ import annotations

import pytest

from fanout._concurrency import INITIAL, PROBE_INTERVAL, AutoLimit


def drive(limit: AutoLimit, capacity: int, latency: float, seconds: float,
          start: float = 0.0, busy: bool = True) -> list[int]:
    """Keep ``limit.current`` calls in flight (fewer when not ``busy``) against the server;
    the limit after each window of answers."""
    now, seen = start, []
    while now < start + seconds:
        running = limit.current if busy else max(1, limit.current // 4)
        rtt = latency * max(1.0, running / capacity)
        now += rtt
        for _ in range(running):
            limit.sample(now, rtt, running)
        seen.append(limit.current)
    return seen


def test_auto_grows_to_where_calls_start_queueing_and_stays_near_it() -> None:
    limit = AutoLimit(ceiling=200, start=0.0)
    assert limit.current == INITIAL
    seen = drive(limit, capacity=20, latency=0.05, seconds=10.0)
    settled = seen[len(seen) // 2:]
    assert min(settled) >= 20  # throughput: at least the capacity busy
    assert max(settled) <= 32  # latency: a few queued at most (1.6x the unloaded)
    assert limit.noload == pytest.approx(0.05, rel=0.01)


def test_auto_shrinks_when_the_server_gets_slower_under_the_same_load() -> None:
    limit = AutoLimit(ceiling=200, start=0.0)
    drive(limit, capacity=40, latency=0.05, seconds=5.0)
    high = limit.current
    seen = drive(limit, capacity=10, latency=0.05, seconds=10.0, start=5.0)
    assert high >= 40 and seen[-1] <= 20


def test_auto_never_passes_its_ceiling_and_does_not_grow_when_the_run_is_not_busy() -> None:
    limit = AutoLimit(ceiling=12, start=0.0)
    assert max(drive(limit, capacity=100, latency=0.05, seconds=5.0)) == 12
    idle = AutoLimit(ceiling=100, start=0.0)
    drive(idle, capacity=100, latency=0.05, seconds=5.0, busy=False)
    assert idle.current == INITIAL


def test_auto_measures_the_unloaded_latency_again_every_probe_interval() -> None:
    limit = AutoLimit(ceiling=200, start=0.0)
    drive(limit, capacity=20, latency=0.05, seconds=PROBE_INTERVAL - 1)
    before = limit.current
    seen = drive(limit, capacity=20, latency=0.05, seconds=3.0, start=PROBE_INTERVAL - 1)
    assert min(seen) <= before // 2 + 1  # one window at half the limit
    assert seen[-1] >= 20


def test_a_timeout_cuts_the_limit_once_per_window() -> None:
    limit = AutoLimit(ceiling=100, start=0.0)
    drive(limit, capacity=50, latency=0.05, seconds=3.0)
    before = limit.limit
    limit.drop(3.0)
    limit.drop(3.0)
    assert limit.limit == pytest.approx(before * 0.9)
