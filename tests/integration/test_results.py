"""Failures are data, and impossible to miss: Results, BatchError, bool(result), the warning."""

from __future__ import annotations

import asyncio
import logging

import pytest

import fanout


def test_map_returns_results_whose_values_raise_on_a_failure() -> None:
    results = fanout.map(int, ["1", "x", "3", "y"])
    assert isinstance(results, fanout.Results) and isinstance(results, list)
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert not results.ok
    assert [r.index for r in results.failures] == [1, 3]
    with pytest.raises(fanout.BatchError) as info:
        results.values()
    error = info.value
    assert [r.index for r in error.failures] == [1, 3]
    assert "2 of 4 items failed" in str(error)
    assert "item 1" in str(error) and "ValueError" in str(error) and "'x'" in str(error)
    assert isinstance(error.__cause__, ValueError)


def test_values_of_an_all_good_batch_are_plain_values_in_order() -> None:
    results = fanout.map(int, ["1", "2", "3"])
    assert results.ok and results.failures == []
    assert results.values() == [1, 2, 3]


def test_amap_returns_results_too() -> None:
    async def parse(text: str) -> int:
        return int(text)

    results = asyncio.run(fanout.amap(parse, ["4", "z"]))
    assert isinstance(results, fanout.Results)
    assert not results.ok and len(results.failures) == 1


def test_bool_of_a_result_is_its_ok() -> None:
    good, bad = fanout.map(int, ["1", "x"])
    assert bool(good) is True and bool(bad) is False
    assert [r.index for r in fanout.map(int, ["7", "q", "8"]) if not r] == [1]


@pytest.mark.parametrize("api", ["map", "imap", "amap", "aimap"])
def test_a_run_with_failures_logs_one_warning(api: str, caplog: pytest.LogCaptureFixture) -> None:
    items = ["1", "x", "2", "y"]

    async def parse(text: str) -> int:
        return int(text)

    async def run_async() -> None:
        if api == "amap":
            await fanout.amap(parse, items)
        else:
            [r async for r in fanout.aimap(parse, items)]

    with caplog.at_level(logging.WARNING, logger="fanout"):
        if api == "map":
            fanout.map(int, items)
        elif api == "imap":
            list(fanout.imap(int, items))
        else:
            asyncio.run(run_async())
    warnings = [r for r in caplog.records if r.name == "fanout" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "2 of 4 items failed" in message
    assert "item 1" in message and "ValueError" in message


def test_no_warning_without_failures_or_under_errors_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="fanout"):
        fanout.map(int, ["1", "2"])
        with pytest.raises(ValueError):
            fanout.map(int, ["x"], errors="raise")
    assert not [r for r in caplog.records if r.name == "fanout"]
