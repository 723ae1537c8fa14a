"""``fanout bench``: the concurrency models side by side, on built-ins or the user's function."""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from fanout.bench._model import DEFAULT_MODES, MODES
from fanout.cli._util import die, open_input

if TYPE_CHECKING:
    from fanout.bench._runner import BenchConfig
    from fanout.bench._workloads import Workload

EXIT_FAILURES = 1
EXIT_INTERRUPTED = 130

WORKLOAD_NAMES = ("http", "sleep", "cpu", "files", "memory")
DEFAULT_SAMPLE = 100


def _names(option: str, text: str, known: tuple[str, ...]) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        die(f"{option} needs at least one of: {', '.join(known)}")
    for name in names:
        if name not in known:
            die(f"{option}: {name!r} is not known; expected one of: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _levels(text: str) -> list[int]:
    levels = []
    for part in text.split(","):
        try:
            level = int(part.strip())
        except ValueError:
            die(f"--concurrency: {part.strip()!r} is not a whole number (e.g. 1,8,64)")
        if level < 1:
            die(f"--concurrency: levels must be >= 1 (got {level})")
        levels.append(level)
    return sorted(set(levels))


def _check_writable(option: str, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        die(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        die(f"{option} {path}: not writable")


def read_sample(path: str, size: int) -> tuple[list[Any], int]:
    """A seeded random sample of ``size`` JSON values from a JSONL file (in file order),
    and the file's item count. Every line is checked; a bad one is a one-line error."""
    rng = random.Random(0)
    chosen: list[tuple[int, Any]] = []
    count = 0
    with open_input(path, what="items") as handle:
        try:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    die(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
                # reservoir sampling: one pass, memory bounded by the sample
                if count < size:
                    chosen.append((count, value))
                else:
                    slot = rng.randrange(count + 1)
                    if slot < size:
                        chosen[slot] = (count, value)
                count += 1
        except UnicodeDecodeError:
            die(f"{path}: not UTF-8 text; expected one JSON value per line")
    if count == 0:
        die(f"{path}: no items (expected one JSON value per line)")
    return [value for _, value in sorted(chosen, key=lambda pair: pair[0])], count


@contextmanager
def _sample_file(values: list[Any]) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fanout-bench-") as folder:
        path = os.path.join(folder, "sample.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(values, f)
        yield path


@click.command("bench")
@click.argument("target", required=False, metavar="[MODULE:FUNCTION]")
@click.option(
    "--items",
    "items_path",
    metavar="INPUT.jsonl",
    help="Items for MODULE:FUNCTION: one JSON value per line.",
)
@click.option(
    "--modes",
    default=",".join(DEFAULT_MODES),
    show_default=True,
    help="Modes to measure, comma-separated.",
)
@click.option(
    "-c",
    "--concurrency",
    "concurrency",
    metavar="LEVELS",
    help="Concurrency levels, comma-separated [default: 1,8,64,512; with --quick 1,8,64].",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="How many items of INPUT.jsonl to run (a seeded random sample).",
)
@click.option(
    "-w",
    "--workloads",
    metavar="NAMES",
    help=f"Built-in workloads to run [default: {','.join(WORKLOAD_NAMES)}].",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    help="Measured runs per cell, after a warm-up [default: 3; with --quick 1].",
)
@click.option("--quick", is_flag=True, help="Fewer levels, items and repeats: about 20 s.")
@click.option("--json", "json_path", metavar="FILE", help="Write the results as JSON.")
@click.option(
    "--plot", "plot_path", metavar="FILE.png", help="Draw throughput against concurrency."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show which cell runs, of how many, on stderr [default: on a terminal]; "
    "to a file or pipe, a line every 10 s (FANOUT_PROGRESS_INTERVAL).",
)
def bench_command(
    target: str | None,
    items_path: str | None,
    modes: str,
    concurrency: str | None,
    sample: int,
    workloads: str | None,
    repeats: int | None,
    quick: bool,
    json_path: str | None,
    plot_path: str | None,
    progress: bool | None,
) -> None:
    """Measure sequential, thread, async and process mode side by side.

    With no MODULE:FUNCTION, runs the built-in workloads (http, sleep, cpu,
    files, memory). With one, runs that function on a sample of the items in
    INPUT.jsonl. Prints a table per workload and a recommendation derived from
    the numbers. Each cell runs in a fresh process.
    """
    try:
        import psutil  # noqa: F401 - checked early for a clear message
    except ImportError:
        die("fanout bench needs psutil: pip install 'fanout[bench]'")
    mode_list = _names("--modes", modes, MODES)
    levels = _levels(concurrency) if concurrency is not None else None
    if json_path:
        _check_writable("--json", json_path)
    if plot_path:
        _check_writable("--plot", plot_path)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            die("--plot needs matplotlib: pip install 'fanout[bench]'")

    from fanout.bench._runner import BenchConfig
    from fanout.bench._workloads import BUILTINS, UserWorkload, load_target

    config = BenchConfig(mode_list, levels, repeats or (1 if quick else 3), quick)
    if target is None:
        if items_path is not None:
            die("--items needs MODULE:FUNCTION: fanout bench mypkg.jobs:score --items x.jsonl")
        names = _names("--workloads", workloads, WORKLOAD_NAMES) if workloads else WORKLOAD_NAMES
        workload_list = [BUILTINS[name] for name in names]
        _run(config, workload_list, json_path, plot_path, progress=progress, user=False)
        return
    if workloads is not None:
        die("--workloads picks built-in workloads; leave it out with MODULE:FUNCTION")
    if items_path is None:
        die(f"{target} needs its items: --items INPUT.jsonl (one JSON value per line)")
    try:
        load_target(target)
    except ValueError as exc:
        die(str(exc))
    values, _total = read_sample(items_path, sample)
    with _sample_file(values) as sample_path:
        workload = UserWorkload(target, sample_path, len(values))
        workload.description = f"{target} on {len(values)} of the items in {items_path}"
        _run(config, [workload], json_path, plot_path, progress=progress, user=True)


def _run(
    config: BenchConfig,
    workloads: list[Workload],
    json_path: str | None,
    plot_path: str | None,
    *,
    progress: bool | None,
    user: bool,
) -> None:
    from fanout._progress import Progress, want_progress
    from fanout.bench._report import make_console, render, write_json
    from fanout.bench._runner import BenchProgress, run_bench

    where = BenchProgress()
    try:
        display = Progress(where, "bench") if want_progress(progress) else None
    except ValueError as exc:  # FANOUT_PROGRESS_INTERVAL is not a number of seconds
        die(str(exc))
    if display is not None:
        display.start()
    try:
        report = run_bench(workloads, config, where)
    except KeyboardInterrupt:
        report = None
    finally:
        if display is not None:
            display.stop()
    if report is None:
        click.echo("interrupted: no results written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    render(report, make_console())
    if json_path:
        write_json(report, json_path)
    if plot_path:
        from fanout.bench._plot import write_plot

        write_plot(report, plot_path)
    if user and any(
        w.error or any(not c.ok or c.failed_items for c in w.cells) for w in report.workloads
    ):
        sys.exit(EXIT_FAILURES)
