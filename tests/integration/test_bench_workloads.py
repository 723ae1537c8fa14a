"""A smoke run of every built-in workload at tiny sizes, each cell in its own process."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from fanout._classify import cores
from fanout.bench._model import DEFAULT_MODES as MODES
from fanout.bench._runner import BenchConfig, run_workload
from fanout.bench._workloads import BUILTINS

TINY = {"http": 6, "sleep": 6, "cpu": 4, "files": 20, "memory": 200}


@pytest.mark.parametrize("name", list(TINY))
def test_every_mode_of_every_workload_runs(name: str) -> None:
    workload = BUILTINS[name].with_items(TINY[name])
    config = BenchConfig(list(MODES), [1, 2], repeats=1, quick=True)
    report = run_workload(workload, config, cores())
    assert report.error is None
    assert report.cells, report.skipped
    for cell in report.cells:
        assert cell.ok, (cell.mode, cell.concurrency, cell.error)
        assert cell.failed_items == 0, cell.note
        assert cell.items == TINY[name]
        assert cell.wall.median > 0 and cell.throughput.median > 0
        assert cell.peak_rss_bytes >= cell.baseline_rss_bytes > 0
        assert cell.threads >= 1
        if cell.mode == "process":
            assert cell.processes >= 1
        else:
            assert cell.processes == 0
    assert report.recommendation is not None
    ran = {c.mode for c in report.cells} | {s.mode for s in report.skipped}
    assert ran == set(MODES)
    if name == "memory":
        by_mode = {c.mode: c for c in report.cells}
        assert set(by_mode) == {"thread", "async"}
        assert by_mode["thread"].startup is not None and by_mode["async"].startup is not None
        # 200 one-second waits at once: the thread cell really ran many threads, async few
        assert by_mode["thread"].threads > 100
        assert by_mode["async"].threads < 20
        for cell in report.cells:
            ratio = cell.ratio_to_min
            assert ratio is not None and ratio >= 1.0


def test_cpu_theoretical_minimum_uses_the_sequential_time_per_item() -> None:
    workload = BUILTINS["cpu"].with_items(4)
    config = BenchConfig(["sequential", "process"], [1, 2], repeats=1, quick=True)
    report = run_workload(workload, config, cores())
    sequential = next(c for c in report.cells if c.mode == "sequential")
    assert sequential.ratio_to_min == pytest.approx(1.0)
    assert all(c.theoretical_min_s is not None for c in report.cells)


def _limit_address_space() -> None:
    # 10,000 thread stacks need far more than 1 GB of address space; coroutines don't
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_threads_that_cannot_start_are_reported(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fanout",
            "bench",
            "--workloads",
            "memory",
            "--quick",
            "--json",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        preexec_fn=_limit_address_space,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (workload,) = json.loads((tmp_path / "m.json").read_text())["workloads"]
    cells = {c["mode"]: c for c in workload["cells"]}
    assert cells["thread"]["status"] == "failed"
    assert "can't start new thread" in cells["thread"]["error"]
    assert "of 10,000 thread waits started" in cells["thread"]["error"]
    assert cells["async"]["status"] == "ok"
    rec = workload["recommendation"]
    assert (rec["mode"], rec["kind"]) == ("async", "memory-bound")
    assert "threads failed" in rec["reason"]
    assert "failed: RuntimeError" in proc.stdout


def test_a_cell_stops_repeating_when_its_time_budget_is_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fanout.bench import _cell

    monkeypatch.setattr(_cell, "MAX_MEASURED_S", 0.05)
    spec = {
        "workload": "sleep",
        "params": {},
        "mode": "thread",
        "concurrency": 2,
        "items": 8,  # 80 ms a run: over budget after the first
        "repeats": 5,
        "warmup": False,
    }
    out = _cell.run_cell(spec)
    assert out["error"] is None
    assert len(out["wall_s"]) == 1
    assert out["budget_note"] == "1 of 5 runs: the cell used up its 0.05 s budget"
