"""The executor seam from a backend author's side: a user-written Executor subclass,
handed to the public API with ``executor=``, runs under every orchestrator policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import fanout
from fanout.executors._calls import Outcome


class Recording(fanout.Executor):
    """Runs calls inline on the loop, recording what it was asked to do."""

    mode = "recording"
    max_batch = 512
    batch_target = 0.001

    def __init__(self, refuse: object = None) -> None:
        self.refuse = refuse
        self.fn: Callable[..., Any] | None = None
        self.sizes: list[int] = []
        self.closed: list[bool] = []

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        if getattr(fn, "__name__", "") == "forbidden":
            raise fanout.ConfigError("recording cannot run forbidden(): use another function")
        self.fn = fn

    def check_item(self, item: Any) -> None:
        if item == self.refuse:
            raise fanout.ConfigError(f"recording cannot take item {item!r}")

    def submit(self, items: list[Any]) -> Awaitable[Outcome]:
        self.sizes.append(len(items))
        return self._run(items)

    async def _run(self, items: list[Any]) -> Outcome:
        assert self.fn is not None
        values, elapsed, errors = [], [], {}
        for i, item in enumerate(items):
            start = time.perf_counter()
            try:
                values.append(self.fn(item))
            except Exception as exc:
                values.append(None)
                errors[i] = exc
            elapsed.append(time.perf_counter() - start)
        return values, elapsed, errors or None

    async def aclose(self, cancel: bool = False) -> None:
        self.closed.append(cancel)


def square(x: int) -> int:
    return x * x


def test_a_user_written_executor_runs_a_batch_with_every_policy() -> None:
    executor = Recording()
    results = fanout.map(square, range(5000), executor=executor, concurrency=3)
    assert results.values() == [x * x for x in range(5000)]
    assert max(executor.sizes) > 1  # tiny calls were batched for it
    assert max(executor.sizes) <= 512
    assert sum(executor.sizes) == 5000
    assert executor.closed == [False]
    # the same instance serves a later run
    assert fanout.map(square, [3], executor=executor).values() == [9]
    assert executor.closed == [False, False]


def test_failures_and_retries_are_the_orchestrators() -> None:
    calls: list[int] = []

    def flaky(x: int) -> int:
        calls.append(x)
        if calls.count(x) < 3:
            raise ConnectionError("again")
        return x

    results = fanout.map(flaky, [1, 2], executor=Recording(), retries=5, backoff=0)
    assert results.values() == [1, 2]
    assert [r.attempts for r in results] == [3, 3]


def test_an_executor_refuses_an_item_or_a_function_before_anything_runs() -> None:
    executor = Recording(refuse=0)
    with pytest.raises(fanout.ConfigError, match="cannot take item 0"):
        fanout.map(square, range(3), executor=executor)
    assert executor.sizes == []

    def forbidden(x: int) -> int:
        return x

    with pytest.raises(fanout.ConfigError, match="cannot run forbidden"):
        fanout.map(forbidden, range(3), executor=Recording())


class Unstoppable(fanout.Executor):
    """Calls it cannot stop: on a deadline they are abandoned and end later on their own."""

    mode = "unstoppable"
    stops = "abandon"

    def __init__(self, runs_for: dict[int, float]) -> None:
        self.runs_for = runs_for
        self.starts: list[tuple[int, float]] = []
        self.ends: dict[int, float] = {}
        self._ended: dict[int, asyncio.Future[None]] = {}

    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        pass

    def submit(self, items: list[Any]) -> Awaitable[Outcome]:
        (item,) = items
        loop = asyncio.get_running_loop()
        self.starts.append((item, loop.time()))
        result: asyncio.Future[Outcome] = loop.create_future()
        ended: asyncio.Future[None] = loop.create_future()
        self._ended[item] = ended

        def finish() -> None:
            self.ends[item] = loop.time()
            ended.set_result(None)
            if not result.done():
                result.set_result(([item], [0.0], None))

        loop.call_later(self.runs_for.get(item, 0.0), finish)
        return _Call(item, result)

    def stopped(self, call: Awaitable[Outcome]) -> Awaitable[None] | None:
        assert isinstance(call, _Call)
        return self._ended[call.item]


class _Call:
    def __init__(self, item: int, future: asyncio.Future[Outcome]) -> None:
        self.item = item
        self.future = future

    def __await__(self) -> Any:
        return self.future.__await__()


def test_an_abandoned_call_keeps_its_slot_until_it_really_ends() -> None:
    # item 0 ends 0.1 s after its deadline: before its slot has been held a whole
    # timeout more (which would fail the waiting items), so they all run
    executor = Unstoppable({0: 0.3})
    results = fanout.map(lambda x: x, range(4), executor=executor, concurrency=1, timeout=0.2)
    assert isinstance(results[0].error, fanout.CallTimeout)
    assert "runs on" in str(results[0].error)
    assert [r.value for r in results[1:]] == [1, 2, 3]
    starts = dict(executor.starts)
    # item 1 started only once item 0 had really ended, not at its deadline
    assert starts[1] >= executor.ends[0]
