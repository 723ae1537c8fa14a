"""What a run is doing, or did: its mode and why, and its counts (``fanout.last_run()``)."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

_lock = threading.Lock()
_last: RunInfo | None = None


class _Live(Protocol):
    mode: str
    mode_reason: str
    done: int
    failed: int
    retried: int
    stuck: int

    @property
    def concurrency(self) -> int: ...

    @property
    def total(self) -> int | None: ...


class RunInfo:
    """A run's mode (for ``mode="auto"``: the one it chose) with the reason, and its
    counts: live while the run goes on, fixed once it ends.

    ``mode_reason`` reads like ``"process: calls are 97% CPU, 15 ms each"``.
    """

    _COUNTS = ("mode", "mode_reason", "concurrency", "total", "done", "failed", "retried",
               "stuck")

    def __init__(self, api: str, function: str, run: _Live) -> None:
        self.api = api
        self.function = function
        self._run: _Live | None = run
        self._fixed: dict[str, Any] = {}
        self._started = time.monotonic()
        self._ended: float | None = None

    def _get(self, name: str) -> Any:
        run = self._run
        return getattr(run, name) if run is not None else self._fixed[name]

    @property
    def mode(self) -> str:
        """The mode the calls run in (the one ``auto`` chose, once it has)."""
        value: str = self._get("mode")
        return value

    @property
    def mode_reason(self) -> str:
        """Why this mode: ``"thread: asked for"``, ``"process: calls are 97% CPU, 15 ms each"``."""
        value: str = self._get("mode_reason")
        return value

    @property
    def concurrency(self) -> int:
        """Calls the run lets run at once, now."""
        value: int = self._get("concurrency")
        return value

    @property
    def total(self) -> int | None:
        """Items in the input, once known."""
        value: int | None = self._get("total")
        return value

    @property
    def done(self) -> int:
        """Items finished, successes and final failures."""
        value: int = self._get("done")
        return value

    @property
    def failed(self) -> int:
        """Items that ended in failure."""
        value: int = self._get("failed")
        return value

    @property
    def retried(self) -> int:
        """Retries made."""
        value: int = self._get("retried")
        return value

    @property
    def stuck(self) -> int:
        """Calls past their deadline that could not be stopped and still hold a slot."""
        value: int = self._get("stuck")
        return value

    @property
    def running(self) -> bool:
        """Whether the run is still going on."""
        return self._run is not None

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (until it ended)."""
        end = self._ended if self._ended is not None else time.monotonic()
        return end - self._started

    def end(self) -> None:
        """The run is over: keep its final counts, let go of the run."""
        run = self._run
        if run is None:
            return
        self._fixed = {name: getattr(run, name) for name in self._COUNTS}
        self._ended = time.monotonic()
        self._run = None

    def __repr__(self) -> str:
        state = "running" if self.running else "ended"
        return (f"<RunInfo {self.api}({self.function}) {state}: {self.mode_reason}; "
                f"{self.done} done, {self.failed} failed, {self.retried} retries>")


def started(info: RunInfo) -> None:
    global _last
    with _lock:
        _last = info


def last_run() -> RunInfo | None:
    """The most recent run started in this process (None before any): its mode and
    why (``mode="auto"`` says what it chose), and its counts — live while it runs."""
    return _last
