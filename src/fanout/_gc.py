"""Keeping the garbage collector off the Results a process-mode ``map()`` keeps.

Every Result is a GC-tracked object, and ``map()`` keeps them all: left alone,
the collector runs once per 700 new objects and its full passes rescan every
Result kept so far. Measured on a 1,000,000-item process-mode map (the parent's
CPU time, where this work happens; README, "Benchmarks"):

- pausing the collector while a batch of Results is built (its collections
  merge into one) halves that time on CPython 3.11, 3.12 and 3.13;
- freezing each batch afterwards (``gc.freeze()``: out of the collector's
  reach until the run ends) saves another 20-40% on 3.11 and 3.13, and
  nothing on 3.12, so it is used on those two only.

Both change process-wide state, so a run uses them only as a good citizen:
its calls run in worker processes, the collector is on, the program has frozen
nothing itself, and no thread but the caller (waiting in ``map()``) and the
run's loop thread could run Python code meanwhile (else another thread could
turn the collector off, or freeze, inside our pause); one run at a time.
Code of the program can still run in the run's own thread between batches (its
input generator, an unpickling hook): a sentinel object made after each freeze
tells whether anyone froze objects since (it would be frozen too), and then
the run never unfreezes. A collector found off is left off.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PAUSE_AT = 700  # the collector's default first threshold
#: where freezing paid when measured (pausing pays on every supported version)
FREEZE_PAYS = sys.version_info[:2] in {(3, 11), (3, 13)}
_HELPERS = "fanout-kill"  # fanout's own threads, which never run the program's code

_lock = threading.Lock()
_owner: KeptResults | None = None


class KeptResults:
    """The run that may pause the collector and freeze its Results (``active``)."""

    def __init__(self) -> None:
        self.active = False
        self._sentinel: list[object] | None = None  # made after our last freeze
        self._froze = False
        self._spoiled = False  # someone else froze objects: never unfreeze

    def start(self) -> None:
        global _owner
        others = [t for t in threading.enumerate() if not t.name.startswith(_HELPERS)]
        with _lock:
            if _owner is not None or len(others) > 2 or not gc.isenabled():
                return
            if FREEZE_PAYS and gc.get_freeze_count():
                return
            _owner = self
        self.active = True
        self._sentinel = []

    def stop(self) -> None:
        global _owner
        if not self.active:
            return
        self.active = False
        with _lock:
            _owner = None
        if self._froze and self._untouched():
            gc.unfreeze()

    def freeze(self) -> None:
        """Freeze what the collector tracks, unless someone else froze objects
        since the run began (then never again, and no unfreeze at the end)."""
        if not self._untouched():
            return
        gc.freeze()
        self._froze = True
        self._sentinel = []

    def _untouched(self) -> bool:
        """Whether nobody froze objects since our last freeze (or the start)."""
        if self._spoiled:
            return False
        sentinel = self._sentinel
        # Between freezes the generations hold only what was made since: cheap to scan.
        if not any(o is sentinel for gen in range(3) for o in gc.get_objects(gen)):
            self._spoiled = True
        return not self._spoiled


def build_many(build: Callable[[], T], n: int, pause: bool) -> T:
    """``build()``, which makes ``n`` tracked objects and runs no code but
    fanout's; for the active KeptResults run (``pause``), with the collector
    paused and then, where it pays, the objects frozen."""
    owner = _owner
    if not pause or owner is None or n < PAUSE_AT or not gc.isenabled():
        return build()
    gc.disable()
    try:
        return build()
    finally:
        if FREEZE_PAYS:
            owner.freeze()
        gc.enable()
