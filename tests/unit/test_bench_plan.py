"""Which cells a bench runs, and why the others are skipped."""

from __future__ import annotations

from fanout.bench._model import DEFAULT_MODES
from fanout.bench._workloads import BUILTINS

ALL = list(DEFAULT_MODES)


def cells_of(name: str, levels: list[int] | None = None, quick: bool = False, cores: int = 2):
    return BUILTINS[name].plan(ALL, levels, cores, quick)


def test_sequential_runs_only_at_concurrency_one() -> None:
    cells, skipped = cells_of("sleep")
    assert [c.concurrency for c in cells if c.mode == "sequential"] == [1]
    assert {s.concurrency for s in skipped if s.mode == "sequential"} == {8, 64, 512}
    assert all("one call at a time" in s.reason for s in skipped if s.mode == "sequential")


def test_process_mode_stays_within_a_few_processes_per_core() -> None:
    cells, skipped = cells_of("sleep", cores=2)
    assert [c.concurrency for c in cells if c.mode == "process"] == [1, 2, 8]
    reasons = {s.concurrency: s.reason for s in skipped if s.mode == "process"}
    assert set(reasons) == {64, 512}
    assert "2 cores" in reasons[64]


def test_default_levels_for_thread_and_async() -> None:
    cells, _ = cells_of("http")
    for mode in ("thread", "async"):
        assert [c.concurrency for c in cells if c.mode == mode] == [1, 8, 64, 512]


def test_quick_uses_fewer_levels_and_process_at_the_core_count() -> None:
    cells, skipped = cells_of("sleep", quick=True, cores=2)
    assert [c.concurrency for c in cells if c.mode == "sequential"] == [1]
    assert [c.concurrency for c in cells if c.mode == "thread"] == [8, 64]
    assert any("one call at a time" in s.reason for s in skipped if s.mode == "async")
    assert [c.concurrency for c in cells if c.mode == "process"] == [2]
    assert any("--quick" in s.reason for s in skipped if s.mode == "process")


def test_more_workers_than_items_is_skipped() -> None:
    cells, skipped = cells_of("cpu")
    assert max(c.concurrency for c in cells if c.mode == "thread") <= cells[0].items
    assert any("extra workers would idle" in s.reason for s in skipped)


def test_explicit_levels_are_used_as_given() -> None:
    cells, _ = cells_of("sleep", levels=[2, 4])
    assert sorted({c.concurrency for c in cells if c.mode == "thread"}) == [2, 4]
    assert [c.concurrency for c in cells if c.mode == "process"] == [2, 4]


def test_memory_runs_ten_thousand_coroutines_and_threads_only() -> None:
    cells, skipped = cells_of("memory")
    assert {(c.mode, c.concurrency, c.items) for c in cells} == {
        ("async", 10_000, 10_000),
        ("thread", 10_000, 10_000),
    }
    assert {s.mode for s in skipped} == {"sequential", "process"}


def test_with_items_shrinks_every_cell() -> None:
    cells, _ = BUILTINS["memory"].with_items(50).plan(ALL, None, 2, True)
    assert {(c.concurrency, c.items) for c in cells} == {(50, 50)}
    assert BUILTINS["memory"].cell_items(10_000, False) == 10_000


def test_quick_keeps_concurrency_one_when_there_is_no_sequential_baseline() -> None:
    cells, _ = BUILTINS["sleep"].plan(["thread", "async"], None, 2, True)
    assert [c.concurrency for c in cells if c.mode == "thread"] == [1, 8, 64]


def test_levels_asked_for_run_even_beyond_the_item_count() -> None:
    cells, _ = BUILTINS["cpu"].plan(["thread"], [1, 64], 2, False)
    assert [c.concurrency for c in cells] == [1, 64]


def test_dask_is_planned_like_process_mode_when_asked_for() -> None:
    cells, skipped = BUILTINS["cpu"].plan(["process", "dask"], None, 2, False)
    levels = {mode: sorted(c.concurrency for c in cells if c.mode == mode)
              for mode in ("process", "dask")}
    assert 2 in levels["dask"] and levels["dask"][0] == 1
    _, skipped = BUILTINS["memory"].plan(["dask"], None, 2, False)
    assert [s.mode for s in skipped] == ["dask"]
