"""Runs every planned cell of every workload, each in a fresh process, and summarises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import psutil

from fanout._classify import cores, gil_enabled
from fanout.bench._measure import machine_info
from fanout.bench._model import BenchReport, Cell, WorkloadReport
from fanout.bench._recommend import recommend
from fanout.bench._workloads import Planned, Workload

#: a cell that runs longer than this is stopped and reported as failed
CELL_TIMEOUT_S = 600.0
#: the same for built-in workloads, whose cells normally take seconds
BUILTIN_CELL_TIMEOUT_S = 180.0
#: how long to watch the machine's CPU use before starting
BUSY_PROBE_S = 0.5



@dataclass
class BenchProgress:
    """Where a bench run is, for a progress display reading it from its own thread: cells
    finished (``failed``: of those, the ones that failed) of all the planned cells, and
    the one running."""

    total: int | None = None
    done: int = 0
    failed: int = 0
    current: str = ""

    def details(self) -> str:
        return self.current


@dataclass(frozen=True)
class BenchConfig:
    """What to run: modes, concurrency levels (None = each workload's defaults), repeats."""

    modes: list[str]
    levels: list[int] | None
    repeats: int
    quick: bool
    warmup: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "modes": self.modes,
            "concurrency": self.levels,
            "repeats": self.repeats,
            "quick": self.quick,
            "warmup": self.warmup,
            "statistic": "median of the runs (more than repeats when runs are short), min, max",
        }


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # the user's MODULE:FUNCTION is importable from where fanout was started
    paths = [os.getcwd(), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_cell(
    workload: Workload,
    params: dict[str, Any],
    planned: Planned,
    config: BenchConfig,
    timeout: float = CELL_TIMEOUT_S,
) -> Cell:
    """Run one cell in a new Python process and read back its measurements."""
    cell = Cell(planned.mode, planned.concurrency, planned.items)
    cell.note = workload.note(planned.mode, params)
    spec = {
        "workload": workload.name,
        "params": params,
        "mode": planned.mode,
        "concurrency": planned.concurrency,
        "items": planned.items,
        "repeats": config.repeats,
        "warmup": config.warmup,
        "quick": config.quick,
    }
    with tempfile.TemporaryDirectory(prefix="fanout-cell-") as folder:
        result_path = os.path.join(folder, "result.json")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "fanout.bench._cell", result_path],
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            cell.error = f"stopped after {timeout:g} s"
            return cell
        try:
            with open(result_path, encoding="utf-8") as f:
                data: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            last = lines[-1].strip() if lines else "no output"
            cell.error = f"the cell's process exited with code {proc.returncode}: {last}"
            return cell
    cell.wall_s = data["wall_s"]
    cell.cpu_s = data["cpu_s"]
    cell.startup_s = data["startup_s"]
    cell.others_share = data["others_share"]
    cell.peak_rss_bytes = data["peak_rss_bytes"]
    cell.baseline_rss_bytes = data["baseline_rss_bytes"]
    cell.threads = data["threads"]
    cell.processes = data["processes"]
    cell.failed_items = data["failed_items"]
    cell.error = data["error"]
    notes = [n for n in (cell.note, data.get("budget_note")) if n]
    cell.note = "; ".join(notes) if notes else None
    if data["first_failure"]:
        failed = f"{cell.failed_items} of {cell.items} items failed: {data['first_failure']}"
        cell.note = f"{cell.note}; {failed}" if cell.note else failed
    return cell


def per_item_seconds(cells: list[Cell]) -> float | None:
    """Time one call takes alone: from the sequential cell, else any cell at concurrency 1."""
    alone = [c for c in cells if c.ok and c.concurrency == 1]
    sequential = [c for c in alone if c.mode == "sequential"]
    pool = sequential or alone
    if not pool:
        return None
    return min(c.wall.median / c.items for c in pool)


def run_workload(
    workload: Workload,
    config: BenchConfig,
    cores: int,
    progress: BenchProgress | None = None,
) -> WorkloadReport:
    """Plan, run and summarise one workload, with its recommendation."""
    report = WorkloadReport(workload.name, workload.description, workload.theoretical_min)
    planned, report.skipped = workload.plan(config.modes, config.levels, cores, config.quick)
    progress = progress or BenchProgress()
    try:
        progress.current = f"{workload.name}: setting up"
        with workload.setup(config.quick) as params:
            report.notes = sorted(
                {note for mode in config.modes if (note := workload.note(mode, params))}
            )
            for plan in planned:
                progress.current = f"{workload.name}: {plan.mode} at {plan.concurrency:,}"
                timeout = BUILTIN_CELL_TIMEOUT_S if workload.builtin else CELL_TIMEOUT_S
                cell = run_cell(workload, params, plan, config, timeout)
                report.cells.append(cell)
                if not cell.ok:
                    progress.failed += 1
                progress.done += 1
    except Exception as exc:  # the mock server or the temp files could not be set up
        report.error = f"{type(exc).__name__}: {exc}"
        unrun = len(planned) - len(report.cells)  # the workload's cells that never ran
        progress.failed += unrun
        progress.done += unrun
        return report
    t1 = per_item_seconds(report.cells)
    for cell in report.cells:
        cell.theoretical_min_s = workload.theoretical_min_s(cell.items, cell.concurrency, cores, t1)
    report.recommendation = recommend(report.cells, cores=cores, gil=gil_enabled())
    return report


def run_bench(
    workloads: list[Workload], config: BenchConfig, progress: BenchProgress | None = None
) -> BenchReport:
    """Every workload in turn; the report carries the machine header and total time.
    ``progress`` is kept up to date as cells finish."""
    start = time.perf_counter()
    n_cores = cores()
    progress = progress or BenchProgress()
    progress.total = sum(
        len(w.plan(config.modes, config.levels, n_cores, config.quick)[0]) for w in workloads
    )
    progress.current = "measuring how busy the machine is"
    machine = machine_info()
    # before we add any load of our own: a busy machine makes every number noisy
    machine["cpu_busy_at_start"] = psutil.cpu_percent(interval=BUSY_PROBE_S)
    report = BenchReport(machine, config.to_json())
    for workload in workloads:
        report.workloads.append(run_workload(workload, config, n_cores, progress))
    progress.current = ""
    report.total_s = time.perf_counter() - start
    return report
