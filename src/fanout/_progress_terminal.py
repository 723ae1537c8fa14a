"""Progress on a terminal: a live bar drawn by rich, on stderr (imported only when shown)."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskID
from rich.progress import Progress as RichProgress
from rich.table import Column
from rich.text import Text

from fanout._progress_text import Snapshot, failed_text, status_parts


class _Field(ProgressColumn):
    """A column showing a ready-made ``Text`` kept in the task's fields."""

    def __init__(self, name: str, column: Column) -> None:
        super().__init__(table_column=column)
        self.name = name

    def render(self, task: Task) -> Text:
        text: Text = task.fields[self.name]
        return text


class TerminalView:
    """A rich progress bar redrawn each tick; its last frame stays on screen."""

    def __init__(self, stream: TextIO) -> None:
        console = Console(file=stream)
        # One line on any terminal: the bar is shorter on a narrow one, the title keeps its
        # width, and the status gives way last (its end is cut, with an ellipsis: it lists the
        # most telling parts first).
        bar_width = min(40, max(10, console.width - 100))
        self._bar = RichProgress(
            _Field("title", Column(no_wrap=True)),
            BarColumn(bar_width=bar_width, table_column=Column(no_wrap=True)),
            _Field("status", Column()),
            console=console,
            auto_refresh=False,  # redrawn on the display's own ticks
            transient=False,
        )
        self._task: TaskID | None = None

    def show(self, snap: Snapshot) -> None:
        if self._update(snap):
            self._bar.refresh()

    def close(self, snap: Snapshot) -> None:
        self._update(snap)
        self._bar.stop()  # draws the last frame

    def _update(self, snap: Snapshot) -> bool:
        """Put the snapshot in the bar; False when this started it (which drew it)."""
        bar = self._bar
        title, status = Text(snap.description, style="bold"), _status(snap)
        if self._task is None:
            self._task = bar.add_task(
                snap.description, total=snap.total, completed=snap.done, title=title, status=status
            )
            bar.start()
            return False
        bar.update(
            self._task, completed=snap.done, total=snap.total, title=title, status=status
        )
        return True


def _status(snap: Snapshot) -> Text:
    """``720/1,000 (72%), 4,712/s recent, ...``: failures in red when there are some."""
    failed = failed_text(snap) if snap.failed else None
    text = Text(", ").join(
        Text(part, style="red" if part == failed else "") for part in status_parts(snap)
    )
    text.no_wrap, text.overflow = True, "ellipsis"
    return text
