"""The bench's outputs on a synthetic report: the JSON schema, the table, the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from fanout.bench._measure import machine_info
from fanout.bench._model import SCHEMA, BenchReport, Cell, Skipped, WorkloadReport
from fanout.bench._plot import write_plot
from fanout.bench._recommend import recommend
from fanout.bench._report import render, write_json

MB = 1024 * 1024

CELL_KEYS = {
    "mode": str,
    "concurrency": int,
    "items": int,
    "status": str,
    "error": (str, type(None)),
    "note": (str, type(None)),
    "wall_s": (dict, type(None)),
    "throughput": (dict, type(None)),
    "theoretical_min_s": (float, type(None)),
    "ratio_to_min": (float, type(None)),
    "cpu_s": (float, type(None)),
    "peak_rss_bytes": (int, type(None)),
    "baseline_rss_bytes": (int, type(None)),
    "threads": int,
    "processes": int,
    "failed_items": int,
    "startup_s": (float, type(None)),
    "others_cpu_share": (float, type(None)),
}


def check_schema(doc: dict[str, Any]) -> None:
    """Every key docs/bench-schema.md promises, with its type."""
    assert doc["schema"] == SCHEMA
    assert isinstance(doc["total_s"], float)
    machine = doc["machine"]
    for key in ("cores", "python", "implementation", "build", "gil", "free_threaded_build"):
        assert key in machine
    assert isinstance(machine["cores"], int) and isinstance(machine["gil"], bool)
    assert set(doc["settings"]) >= {"modes", "concurrency", "repeats", "quick", "warmup"}
    for workload in doc["workloads"]:
        assert set(workload) == {
            "name",
            "description",
            "theoretical_min",
            "error",
            "cells",
            "skipped",
            "notes",
            "recommendation",
        }
        for cell in workload["cells"]:
            assert set(cell) == set(CELL_KEYS)
            for key, kind in CELL_KEYS.items():
                assert isinstance(cell[key], kind), (key, cell[key])
            assert cell["status"] in ("ok", "failed")
            if cell["status"] == "ok":
                assert set(cell["wall_s"]) == {"median", "min", "max", "runs"}
                assert set(cell["throughput"]) == {"median", "min", "max"}
                low, mid, high = (cell["wall_s"][k] for k in ("min", "median", "max"))
                assert low <= mid <= high
        for skip in workload["skipped"]:
            assert set(skip) == {"mode", "concurrency", "reason"} and skip["reason"]
        rec = workload["recommendation"]
        if rec is not None:
            assert set(rec) == {"mode", "concurrency", "kind", "reason", "within_noise"}
            assert rec["kind"] in ("io-bound", "cpu-bound", "memory-bound", "overhead-bound")
            assert any(
                (c["mode"], c["concurrency"]) == (rec["mode"], rec["concurrency"])
                for c in workload["cells"]
            )


def synthetic_report() -> BenchReport:
    def cell(mode: str, conc: int, walls: list[float], cpu: float) -> Cell:
        c = Cell(mode, conc, 64, wall_s=walls, cpu_s=[cpu] * len(walls))
        c.peak_rss_bytes, c.baseline_rss_bytes = 60 * MB, 50 * MB
        c.threads, c.theoretical_min_s = conc + 1, 64 * 0.05 / conc
        return c

    workload = WorkloadReport("http", "GETs with 50 ms latency", "items * 50 ms / concurrency")
    workload.cells = [
        cell("sequential", 1, [3.3, 3.25, 3.4], 0.05),
        cell("thread", 8, [0.42, 0.41, 0.45], 0.05),
        cell("async", 64, [0.06, 0.061, 0.059], 0.03),
        Cell("process", 64, 64, error="RuntimeError: boom"),
    ]
    workload.skipped = [Skipped("sequential", 8, "sequential runs one call at a time")]
    workload.recommendation = recommend(workload.cells, cores=2, gil=True)
    report = BenchReport(
        machine_info(),
        {
            "modes": ["sequential"],
            "concurrency": None,
            "repeats": 3,
            "quick": False,
            "warmup": True,
        },
    )
    report.workloads.append(workload)
    report.total_s = 4.5
    return report


def test_json_follows_the_documented_schema(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    write_json(synthetic_report(), str(path))
    doc = json.loads(path.read_text())
    check_schema(doc)
    cells = doc["workloads"][0]["cells"]
    assert cells[2]["ratio_to_min"] == 0.06 / 0.05
    assert cells[3]["status"] == "failed" and cells[3]["wall_s"] is None
    assert doc["workloads"][0]["recommendation"]["mode"] == "async"


def test_schema_doc_names_every_cell_field() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "bench-schema.md").read_text()
    for key in CELL_KEYS:
        assert f'"{key}"' in doc, key


def test_table_shows_machine_cells_skips_and_recommendation() -> None:
    console = Console(record=True, width=160)
    render(synthetic_report(), console)
    text = console.export_text()
    assert "cores" in text and "GIL on" in text
    assert "async" in text and "failed: RuntimeError: boom" in text
    assert "skipped sequential at 8: sequential runs one call at a time" in text
    assert "→ async at 64: I/O-bound" in text


def test_plot_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "bench.png"
    write_plot(synthetic_report(), str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
