"""A progress bar on stderr: done/total, rate, ETA, failures.

Rendered by rich on its own refresh thread; the run's counters are read every
tick instead of being pushed per item, so the bar costs nothing per call.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol


class _Counts(Protocol):
    done: int
    failed: int
    retried: int

    @property
    def total(self) -> int | None: ...


def want_progress(progress: bool | None) -> bool:
    """``None`` means: only when stderr is a terminal."""
    if progress is None:
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False
    return bool(progress)


class Progress:
    """Shows a run's counters until stopped."""

    def __init__(self, counts: _Counts, description: str) -> None:
        self.counts = counts
        self.description = description
        self._bar: Any = None
        self._task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        console = Console(file=sys.stderr, force_terminal=None)
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[speed]}/s"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[retried]} retries"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self._task = self._bar.add_task(
            self.description, total=self.counts.total, failed=0, retried=0, speed="0"
        )
        self._bar.start()
        self._thread = threading.Thread(target=self._tick, name="fanout-progress", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        bar, task_id, counts = self._bar, self._task, self.counts
        task = bar.tasks[0]
        speed = task.speed or 0.0
        bar.update(
            task_id,
            completed=counts.done,
            total=counts.total,
            failed=counts.failed,
            retried=counts.retried,
            speed=f"{speed:,.0f}" if speed >= 10 else f"{speed:.1f}",
        )
        bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):  # 4 redraws a second: cheap, still live
            self._refresh()

    def stop(self) -> None:
        if self._bar is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._refresh()
        self._bar.stop()
        self._bar = None
