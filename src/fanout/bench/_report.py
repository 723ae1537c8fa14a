"""The bench on the terminal (a rich table per workload) and as JSON (docs/bench-schema.md)."""

from __future__ import annotations

import json
from collections import defaultdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fanout.bench._measure import machine_line
from fanout.bench._model import BenchReport, Cell, Skipped, WorkloadReport

#: width used when the output is not a terminal (a file, a pipe, a README)
PIPE_WIDTH = 132
#: CPU use by others (percent of all cores) above which the numbers are suspect
BUSY_PERCENT = 25.0


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n else "—"


def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _skipped_lines(skipped: list[Skipped]) -> list[str]:
    by_reason: dict[tuple[str, str], list[int | None]] = defaultdict(list)
    for s in skipped:
        by_reason[(s.mode, s.reason)].append(s.concurrency)
    lines = []
    for (mode, reason), levels in by_reason.items():
        at = ", ".join(f"{c:,}" for c in levels if c is not None)
        lines.append(f"{mode}{' at ' + at if at else ''}: {reason}")
    return lines


def workload_table(workload: WorkloadReport) -> Table:
    """One workload's cells as a rich table; the recommended cell is marked."""
    rec = workload.recommendation
    show_startup = any(c.startup_s for c in workload.cells)
    show_failed = any(c.failed_items for c in workload.cells)
    table = Table(
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("mode")
    table.add_column("conc", justify="right")
    table.add_column("items", justify="right")
    table.add_column("wall s (min-max)", justify="right")
    table.add_column("items/s", justify="right")
    table.add_column("vs min", justify="right")
    table.add_column("CPU s", justify="right")
    table.add_column("peak RSS", justify="right")
    table.add_column("threads", justify="right")
    table.add_column("procs", justify="right")
    if show_startup:
        table.add_column("start-up s", justify="right")
    if show_failed:
        table.add_column("failed", justify="right")
    for cell in workload.cells:
        chosen = rec is not None and (cell.mode, cell.concurrency) == (rec.mode, rec.concurrency)
        style = "bold green" if chosen else None
        table.add_row(*_row(cell, show_startup, show_failed), style=style)
    return table


def _row(cell: Cell, show_startup: bool, show_failed: bool) -> list[str | Text]:
    head: list[str | Text] = [cell.mode, f"{cell.concurrency:,}", f"{cell.items:,}"]
    if not cell.ok:
        rest: list[str | Text] = [Text(f"failed: {cell.error}", style="red")]
        rest += [""] * (6 + show_startup + show_failed)
        return head + rest
    wall = cell.wall
    spread = f" ({_seconds(wall.min)}-{_seconds(wall.max)})" if len(cell.wall_s) > 1 else ""
    ratio = cell.ratio_to_min
    row: list[str | Text] = [
        *head,
        f"{_seconds(wall.median)}{spread}",
        _rate(cell.throughput.median),
        f"{ratio:.2f}" if ratio is not None else "—",
        _seconds(cell.cpu),
        _mb(cell.peak_rss_bytes),
        f"{cell.threads:,}",
        str(cell.processes),
    ]
    if show_startup:
        row.append(_seconds(cell.startup) if cell.startup is not None else "—")
    if show_failed:
        row.append(f"{cell.failed_items:,}")
    return row


def render(report: BenchReport, console: Console) -> None:
    """The whole bench: the machine header, then each workload's table and verdict."""
    settings = report.settings
    console.print(f"[bold]fanout bench[/] — {machine_line(report.machine)}", highlight=False)
    warm = "after a warm-up" if settings.get("warmup") else "no warm-up"
    console.print(
        f"{settings['repeats']} repeat(s) per cell, {warm}, each cell in a fresh process; "
        "median (min-max); vs min = wall / theoretical minimum; RSS, threads and processes "
        "are peaks over the whole process tree",
        highlight=False,
    )
    busy = report.machine.get("cpu_busy_at_start")
    if busy is not None and busy > BUSY_PERCENT:
        console.print(
            f"[yellow]warning: other programs kept the CPUs {busy:.0f}% busy just before the "
            "bench: expect noise, and rerun when the machine is quiet[/]",
            highlight=False,
        )
    for workload in report.workloads:
        console.print()
        if workload.error:
            console.print(f"[bold]{workload.name}[/]: [red]could not run: {workload.error}[/]")
            continue
        console.print(f"[bold]{workload.name}[/] — {workload.description}", highlight=False)
        console.print(workload_table(workload))
        if workload.theoretical_min:
            console.print(f"  theoretical minimum: {workload.theoretical_min}", highlight=False)
        for line in _skipped_lines(workload.skipped):
            console.print(f"  skipped {line}", highlight=False)
        for note in workload.notes:
            console.print(f"  note: {note}", highlight=False)
        for cell in workload.cells:
            if cell.ok and cell.note and cell.note not in workload.notes:
                console.print(f"  [yellow]{cell.mode} at {cell.concurrency}: {cell.note}[/]")
        noisy = [c.others for c in workload.cells if c.others is not None]
        if noisy and max(noisy) * 100 > BUSY_PERCENT:
            console.print(
                f"  [yellow]warning: other programs used up to {max(noisy):.0%} of the CPUs "
                "while these cells ran: expect noise[/]",
                highlight=False,
            )
        rec = workload.recommendation
        if rec is None and not workload.cells:
            console.print("  nothing ran: every cell was skipped", highlight=False)
        elif rec is None:
            console.print("  [red]no recommendation: no cell ran cleanly[/]")
        else:
            console.print(
                f"  [bold]→ {rec.mode} at {rec.concurrency:,}[/]: {rec.reason}", highlight=False
            )
    console.print()
    console.print(f"total {report.total_s:.1f} s", highlight=False)


def make_console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPE_WIDTH)
    return console


def write_json(report: BenchReport, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report.to_json(), f, indent=2)
        f.write("\n")
