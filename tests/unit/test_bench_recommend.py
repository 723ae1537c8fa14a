"""The recommendation, on synthetic measurements: it follows the numbers, not the names."""

from __future__ import annotations

from fanout.bench._model import Cell
from fanout.bench._recommend import recommend

MB = 1024 * 1024


def cell(
    mode: str,
    concurrency: int,
    walls: list[float],
    *,
    items: int = 100,
    cpu: float | None = None,
    extra_mb: int = 1,
    startup: float | None = None,
    error: str | None = None,
) -> Cell:
    c = Cell(mode, concurrency, items)
    c.baseline_rss_bytes = 30 * MB
    c.peak_rss_bytes = (30 + extra_mb) * MB
    if error is not None:
        c.error = error
        return c
    c.wall_s = walls
    c.cpu_s = [cpu if cpu is not None else w for w in walls]
    if startup is not None:
        c.startup_s = [startup]
    return c


def test_cpu_bound_recommends_processes_and_blames_the_gil() -> None:
    cells = [
        cell("sequential", 1, [2.0, 2.02, 1.98]),
        cell("thread", 8, [2.0, 2.05, 1.99]),
        cell("async", 8, [2.01, 2.0, 2.03]),
        cell("process", 2, [1.05, 1.04, 1.06], cpu=0.05),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert (rec.mode, rec.concurrency) == ("process", 2)
    assert rec.kind == "cpu-bound"
    assert "processes 1.9x" in rec.reason
    assert "threads 1.0x" in rec.reason
    assert rec.reason.endswith("the GIL")


def test_cpu_bound_without_gil_says_threads_scale() -> None:
    cells = [
        cell("sequential", 1, [2.0, 2.0, 2.0]),
        cell("thread", 2, [1.02, 1.03, 1.01]),
        cell("process", 2, [1.1, 1.12, 1.09]),
    ]
    rec = recommend(cells, cores=2, gil=False)
    assert rec is not None
    assert rec.mode == "thread"
    assert rec.kind == "cpu-bound"
    assert "no GIL" in rec.reason


def test_io_bound_prefers_the_simpler_mode_within_noise() -> None:
    cells = [
        cell("sequential", 1, [5.0, 5.01, 5.02], cpu=0.1),
        cell("thread", 8, [0.64, 0.65, 0.63], cpu=0.1),
        cell("thread", 64, [0.105, 0.108, 0.102], cpu=0.1),
        cell("async", 64, [0.1, 0.101, 0.104], cpu=0.05),
        cell("process", 8, [0.9, 0.95, 0.92], cpu=0.5),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert rec.kind == "io-bound"
    # async is 5% faster, within the repeats' noise: threads are simpler
    assert (rec.mode, rec.concurrency) == ("thread", 64)
    assert ("async", 64) in rec.within_noise
    assert "I/O-bound" in rec.reason and "async 49.6x at 64" in rec.reason
    assert "within noise" in rec.reason


def test_io_bound_takes_the_clearly_faster_mode() -> None:
    cells = [
        cell("sequential", 1, [5.0, 5.0, 5.0], cpu=0.1),
        cell("thread", 64, [0.2, 0.2, 0.2], cpu=0.1),
        cell("async", 512, [0.05, 0.05, 0.05], cpu=0.05),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert (rec.mode, rec.concurrency) == ("async", 512)
    assert rec.within_noise == ()


def test_equal_speed_goes_to_the_lighter_of_thread_and_async() -> None:
    cells = [
        cell("sequential", 1, [5.0, 5.0, 5.0], cpu=0.1),
        cell("thread", 512, [0.1, 0.1, 0.1], cpu=0.05, extra_mb=300),
        cell("async", 512, [0.1, 0.1, 0.1], cpu=0.05, extra_mb=20),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert rec.mode == "async"
    assert "least memory" in rec.reason and "+20 MB" in rec.reason


def test_memory_bound_compares_coroutines_and_threads_at_one_level() -> None:
    cells = [
        cell("thread", 10_000, [2.7, 2.8, 2.6], cpu=1.3, extra_mb=130, startup=1.5),
        cell("async", 10_000, [1.15, 1.2, 1.1], cpu=0.2, extra_mb=40, startup=0.1),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert (rec.mode, rec.concurrency) == ("async", 10_000)
    assert rec.kind == "memory-bound"
    assert "async +40 MB" in rec.reason and "threads +130 MB (3.2x)" in rec.reason
    assert "start-up 1.50 s" in rec.reason


def test_memory_bound_reports_threads_that_failed_to_start() -> None:
    cells = [
        cell("thread", 10_000, [], error="RuntimeError: can't start new thread"),
        cell("async", 10_000, [1.1, 1.1, 1.1], cpu=0.2, extra_mb=40, startup=0.1),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert rec.mode == "async"
    assert rec.kind == "memory-bound"
    assert "threads failed (RuntimeError: can't start new thread)" in rec.reason


def test_tiny_calls_stay_sequential() -> None:
    cells = [
        cell("sequential", 1, [0.004, 0.004, 0.0041], items=300),
        cell("thread", 8, [0.01, 0.011, 0.01], items=300),
        cell("process", 2, [0.13, 0.14, 0.12], items=300),
    ]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None
    assert (rec.mode, rec.concurrency) == ("sequential", 1)
    assert rec.kind == "overhead-bound"
    assert "tiny calls (13 µs each)" in rec.reason


def test_noisy_repeats_widen_what_counts_as_a_tie() -> None:
    steady = [cell("thread", 8, [1.0, 1.0, 1.0]), cell("async", 8, [0.85, 0.86, 0.85])]
    rec = recommend(steady, cores=2, gil=True)
    assert rec is not None and rec.mode == "async"
    noisy = [cell("thread", 8, [0.8, 1.0, 1.3]), cell("async", 8, [0.85, 0.86, 0.85])]
    rec = recommend(noisy, cores=2, gil=True)
    assert rec is not None and rec.mode == "thread"


def test_cells_with_failed_items_are_not_recommended() -> None:
    bad = cell("async", 64, [0.05, 0.05, 0.05], cpu=0.01)
    bad.failed_items = 3
    cells = [cell("sequential", 1, [1.0, 1.0, 1.0], cpu=0.01), bad]
    rec = recommend(cells, cores=2, gil=True)
    assert rec is not None and rec.mode == "sequential"


def test_no_clean_cell_no_recommendation() -> None:
    assert recommend([cell("thread", 8, [], error="boom")], cores=2, gil=True) is None
