"""Making many Results without the garbage collector rescanning them.

Every Result is a GC-tracked object. A batch of 8,192 tiny calls makes 8,192
of them at once, and ``map()`` keeps them all: left alone, the collector runs
once per 700 new objects, and its older-generation passes rescan every Result
made so far, again and again (20% of a 100k-item process-mode map, 35% at 1M).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PAUSE_AT = 700  # the collector's default first threshold

_lock = threading.Lock()
_freezers = 0


class KeptResults:
    """Freezes the heap after each big batch while a process-mode ``map()`` keeps every result.

    ``gc.freeze()`` moves every tracked object out of the collector's reach
    until ``gc.unfreeze()``: the kept Results are never rescanned, at the cost
    that other garbage cycles alive at a freeze wait for the end of the run.
    Only used when the user's calls run in other processes (so no user code
    makes garbage here), and never in a program that freezes objects itself.
    """

    def __init__(self) -> None:
        self.active = False

    def start(self) -> None:
        global _freezers
        with _lock:
            if _freezers == 0 and (not gc.isenabled() or gc.get_freeze_count()):
                return
            _freezers += 1
        self.active = True

    def stop(self) -> None:
        global _freezers
        if not self.active:
            return
        self.active = False
        with _lock:
            _freezers -= 1
            if _freezers == 0:
                gc.unfreeze()


def build_many(build: Callable[[], T], n: int, freeze: bool) -> T:
    """``build()``, which makes ``n`` tracked objects, with at most one collection.

    Paused, the allocation count keeps growing, so the collections are merged
    into one, not skipped; with ``freeze`` there is none. Only the loop thread
    toggles the collector, for a few milliseconds.
    """
    paused = n >= PAUSE_AT and gc.isenabled()
    if not paused:
        return build()
    gc.disable()
    try:
        return build()
    finally:
        if freeze:
            gc.freeze()
        gc.enable()
