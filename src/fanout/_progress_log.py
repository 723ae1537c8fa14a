"""Progress for logs (CI, cron, journald): one plain line every ``interval`` seconds."""

from __future__ import annotations

from typing import TextIO

from fanout._progress_text import Snapshot, plain_line


class LogView:
    """Writes a plain line to ``stream`` every ``interval`` seconds of the run, and one at
    the end; no control characters, so a log file shows the run's pace as it goes."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._next = interval

    def show(self, snap: Snapshot) -> None:
        if snap.elapsed >= self._next:
            # the next line is due one interval after this one, however late this tick was
            self._next = snap.elapsed + self._interval
            self._write(plain_line(snap))

    def close(self, snap: Snapshot) -> None:
        self._write(plain_line(snap))

    def _write(self, line: str) -> None:
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not break the run
