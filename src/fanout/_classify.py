"""What kind of work a function's calls are, from measurements: the one
classification shared by ``fanout bench``'s recommendation and ``mode="auto"``.

The measurements are those of calls running alone (or the GIL's share of a
probe's time, for ``auto``): the CPU time over the wall time, and the time
per call.

- **overhead-bound**: calls shorter than ``TINY_CALL_S`` (and, where a bench
  measured the modes, none gaining ``NO_GAIN``): handing work to a worker
  costs about as much as the work.
- **cpu-bound**: the CPU is busy at least ``CPU_BOUND_SHARE`` of the time:
  with the GIL on, only processes run such calls in parallel.
- **io-bound**: the rest: calls mostly wait, and threads or coroutines overlap
  the waits.
"""

from __future__ import annotations

import os
import sys
from typing import Literal

Kind = Literal["cpu-bound", "io-bound", "overhead-bound"]

#: CPU time over wall time at or above which calls are CPU-bound
CPU_BOUND_SHARE = 0.5
#: below this per-call time the hand-off between workers dominates
TINY_CALL_S = 0.0005
#: a speedup under this is "nothing gained"
NO_GAIN = 1.3


def kind_of(cpu_share: float, per_call_s: float, *, best_gain: float | None = None) -> Kind:
    """The kind of work; ``best_gain`` is the best speedup any mode measured, if known."""
    if per_call_s < TINY_CALL_S and (best_gain is None or best_gain < NO_GAIN):
        return "overhead-bound"
    if cpu_share >= CPU_BOUND_SHARE:
        return "cpu-bound"
    return "io-bound"


def cores() -> int:
    """Cores this process may run on (the affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def gil_enabled() -> bool:
    """False on a free-threaded build running without the GIL."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())
