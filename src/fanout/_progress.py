"""A run's progress, shown where it is watched: a terminal, a notebook, or a log.

The display runs on a thread of its own and reads the run's counters a few times a second
(nothing is pushed per item, so it costs the run nothing per call). Each tick makes one
``Snapshot`` (counts, the recent rate from one ``RateMeter``, ETA) and hands it to one view:

- a Jupyter kernel: a widget, or a line of text updated in place (``_progress_notebook``);
- stderr is a terminal: a live bar (``_progress_terminal``);
- anything else (a file, a pipe, CI, journald): a plain line every ``interval`` seconds
  and one at the end (``_progress_log``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any, Protocol

from fanout._errors import ConfigError
from fanout._progress_notebook import in_notebook, notebook_view
from fanout._progress_rate import RateMeter
from fanout._progress_text import Snapshot

INTERVAL_ENV = "FANOUT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 10.0
#: redraws per second of a terminal bar or a notebook display: live, and cheap
_TICK_S = 0.25


class _Counts(Protocol):
    """The live run, read from the display's thread. It may also have ``retried: int``,
    ``stuck: int`` (calls past their timeout, still running) and ``details() -> str``
    (more live text from the run); each is shown when present."""

    done: int
    failed: int

    @property
    def total(self) -> int | None: ...


class _View(Protocol):
    def show(self, snap: Snapshot) -> None: ...
    def close(self, snap: Snapshot) -> None: ...


def want_progress(progress: bool | None) -> bool:
    """``None`` means: in a Jupyter notebook, or when stderr is a terminal."""
    if progress is None:
        return in_notebook() or _is_terminal(sys.stderr)
    return bool(progress)


def progress_interval(interval: float | None = None) -> float:
    """Seconds between two plain progress lines: ``interval``, else the environment's
    ``FANOUT_PROGRESS_INTERVAL``, else 10. Raises ``ConfigError`` on a value that is not a
    number of seconds > 0."""
    name = "progress_interval"
    given: object = interval
    if interval is None:
        text = os.environ.get(INTERVAL_ENV, "").strip()
        if not text:
            return DEFAULT_INTERVAL_S
        name, given = INTERVAL_ENV, text
        try:
            interval = float(text)
        except ValueError:
            interval = math.nan
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
        math.isfinite(interval) and interval > 0
    ):
        raise ConfigError(f"{name} must be a number of seconds > 0 (got {name}={given!r})")
    return float(interval)


class Progress:
    """Shows a run's counters from ``start()`` until ``stop()``.

    ``interval`` is the seconds between plain lines when stderr is neither a terminal nor a
    notebook (see ``progress_interval``).
    """

    def __init__(
        self, counts: _Counts, description: str, *, interval: float | None = None
    ) -> None:
        self.counts = counts
        self.description = description
        self.interval = progress_interval(interval)
        self._view: _View | None = None
        self._meter: RateMeter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._meter = RateMeter(time.monotonic(), self.counts.done)
        self._view = _choose_view(self.interval)
        self._view.show(self._snapshot())
        self._thread = threading.Thread(target=self._tick, name="fanout-progress", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        assert self._view is not None
        while not self._stop.wait(min(_TICK_S, self.interval)):
            self._view.show(self._snapshot())

    def stop(self) -> None:
        if self._view is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._view.close(self._snapshot(final=True))
        self._view = None

    def _snapshot(self, final: bool = False) -> Snapshot:
        counts, meter = self.counts, self._meter
        assert meter is not None
        now = time.monotonic()
        done, total = counts.done, counts.total
        meter.sample(now, done)
        details = getattr(counts, "details", None)
        return Snapshot(
            description=self.description,
            done=done,
            total=total,
            failed=counts.failed,
            retried=getattr(counts, "retried", None),
            stuck=getattr(counts, "stuck", 0),
            details=str(details()) if callable(details) else "",
            elapsed=now - meter.start,
            rate=meter.overall() if final else meter.recent(),
            eta=None if final else meter.eta(total),
            final=final,
        )


def _choose_view(interval: float) -> _View:
    if in_notebook():
        return notebook_view()
    stream = sys.stderr
    if _is_terminal(stream):
        from fanout._progress_terminal import TerminalView

        return TerminalView(stream)
    from fanout._progress_log import LogView

    return LogView(stream, interval)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stderr (pythonw), or a closed one
        return False
