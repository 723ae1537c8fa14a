"""``mode="auto"`` for a sync function: run the first calls on threads, measure, choose.

**The probe.** The run starts in thread mode with one slot open: the first call
runs alone, wrapped to measure how much of its wall time it wanted the CPU:
the time it ran plus the time it was ready to run but waited for a core (its
thread's ``/proc/self/task/<tid>/schedstat`` on Linux; elsewhere its CPU
clock alone). Counting the wait for a core keeps the reading right on a busy
machine, where a CPU-bound call gets only part of a core. A clear reading
decides early, while the call still runs: once it has run ``EARLY_S``, a
share of at least ``EARLY_CPU`` is CPU-bound and at most ``EARLY_WAIT`` is
waiting. Otherwise the decision waits
for the call to end and classifies it with ``fanout._classify`` — the same
code and thresholds as ``fanout bench``'s recommendation (CPU-bound from a
50% share; tiny below 0.5 ms).

**The choice** (``choose``):

- CPU-bound, with the GIL on, at least two cores, a function (and first item)
  that can be sent to a worker process, and enough calls left that running
  them in parallel saves more than starting the workers costs → ``process``
  for the rest of the run;
- CPU-bound otherwise → ``thread``, saying which condition kept it there
  (on a free-threaded build, threads run CPU-bound calls in parallel);
- mostly waiting → ``thread``, all slots open;
- tiny calls → ``thread``, where they are sent in batches (the lowest per-call
  overhead of the modes in this process) — unless worker processes are already
  warm, the calls are CPU, the items small (``SMALL_ITEM_BYTES`` pickled) and at
  least ``TINY_CALLS_FOR_PROCESS`` are left: then ``process``, where batches of
  thousands cost less per call than threads do (measured: 100,000 trivial calls
  take 0.04 s there, 0.09 s on threads), since the workers run the calls on the
  other cores while the parent only builds the results.

The switch is the orchestrator's (``Run._switch``): calls already running
finish where they are, and every later call — retries included — runs in the
chosen mode, so no item is lost and order, retries and timeouts mean what they
meant. An explicit ``mode=`` is never overridden.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fanout._classify import CPU_BOUND_SHARE, kind_of

#: how long the first call must have run before a reading of it is trusted
EARLY_S = 0.003
#: a running call busy at least this share of its time so far is CPU-bound
EARLY_CPU = 0.85
#: ... and at most this share: it waits
EARLY_WAIT = 0.15
#: tiny calls go to warm worker processes when at least this many are left ...
TINY_CALLS_FOR_PROCESS = 10_000
#: ... and the first item pickles to at most this many bytes
SMALL_ITEM_BYTES = 1024


@dataclass(frozen=True)
class Reading:
    """One call's seconds (so far, if it still runs): on the CPU, ready to run but
    waiting for a core, and on the wall clock."""

    cpu: float
    ready: float
    wall: float
    finished: bool

    @property
    def demand(self) -> float:
        """Seconds the call wanted the CPU (a lower bound while it still runs)."""
        return self.cpu + self.ready

    @property
    def share(self) -> float:
        """The share of its time the call wanted the CPU."""
        return min(1.0, self.demand / self.wall) if self.wall > 0 else 0.0


@dataclass(frozen=True)
class Facts:
    """What else the choice depends on."""

    cores: int
    gil: bool
    #: why the calls cannot go to worker processes, or None if they can
    process_refused: str | None
    #: calls left to run, if known
    left: int | None
    #: the process concurrency the run would use
    process_slots: int
    #: seconds to start the worker processes (0 when warm ones wait)
    startup_s: float
    #: the first item's size, pickled (None: unknown)
    item_bytes: int | None = None


@dataclass(frozen=True)
class Choice:
    mode: str
    reason: str


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.1f} s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1e6:.0f} µs"


def choose(reading: Reading, facts: Facts) -> Choice | None:
    """The mode for the rest of the run, with a one-line reason; None when the
    reading of a call still running is not enough to tell (wait for it to end)."""
    share, wall = reading.share, reading.wall
    each = _duration(wall) if reading.finished else f"{_duration(wall)} and more"
    kind = kind_of(share, wall if reading.finished else max(wall, EARLY_S))
    said = f"calls are {share:.0%} CPU, {each} each"
    if kind == "overhead-bound":
        if _tiny_calls_pay_on_warm_workers(share, facts):
            return Choice("process", f"process: tiny calls ({each} each, {share:.0%} CPU), "
                                     "sent in batches to the warm worker processes")
        return Choice("thread", f"thread: tiny calls ({each} each), sent in batches")
    if kind == "io-bound":
        return Choice("thread", f"thread: {said}: they mostly wait")
    if not facts.gil:
        return Choice("thread", f"thread: {said}, and without the GIL threads run them "
                                "in parallel")
    if facts.cores < 2:
        return Choice("thread", f"thread: {said}, but with 1 core processes would not run "
                                "them in parallel")
    if facts.process_slots < 2:
        return Choice("thread", f"thread: {said}, but with concurrency=1 processes would not "
                                "run them in parallel")
    if facts.process_refused is not None:
        return Choice("thread", f"thread: {said}, but they cannot go to worker processes: "
                                f"{facts.process_refused}")
    if facts.left is not None:
        parallel = min(facts.cores, facts.process_slots)
        saved = facts.left * reading.demand * (1 - 1 / parallel)
        if saved <= facts.startup_s:
            if not reading.finished:  # its demand so far is only a lower bound
                return None
            return Choice("thread", f"thread: {said}, but {facts.left} calls left do not pay "
                                    "for starting worker processes")
    return Choice("process", f"process: {said}")


def _tiny_calls_pay_on_warm_workers(share: float, facts: Facts) -> bool:
    return (share >= CPU_BOUND_SHARE and facts.gil and facts.cores >= 2
            and facts.process_slots >= 2 and facts.process_refused is None
            and facts.startup_s == 0.0
            and facts.item_bytes is not None and facts.item_bytes <= SMALL_ITEM_BYTES
            and facts.left is not None and facts.left >= TINY_CALLS_FOR_PROCESS)


class Probe:
    """``fn`` wrapped to measure each call on the thread that runs it; a call still
    running can be read from another thread."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "probe")
        self._lock = threading.Lock()
        self._running: dict[int, tuple[float, tuple[float, float]]] = {}
        #: readings of finished calls
        self.finished: list[Reading] = []

    def __call__(self, item: Any) -> Any:
        tid = threading.get_native_id()
        start_cpu = _cpu_and_ready(tid)
        with self._lock:
            self._running[tid] = (time.perf_counter(), start_cpu)
        start_thread = time.thread_time()
        start = time.perf_counter()
        try:
            return self.fn(item)
        finally:
            wall = time.perf_counter() - start
            # schedstat's run time may lag a running thread by up to a tick: the
            # thread's own CPU clock is exact for what ran, so a call of microseconds
            # still reads as the CPU work it is
            ran = time.thread_time() - start_thread
            end_cpu = _cpu_and_ready(tid)
            reading = Reading(max(end_cpu[0] - start_cpu[0], ran), end_cpu[1] - start_cpu[1],
                              wall, True)
            with self._lock:
                del self._running[tid]
                self.finished.append(reading)

    def reading(self) -> Reading | None:
        """The first finished call's reading, else one of a call still running
        (None when none can be read yet)."""
        with self._lock:
            if self.finished:
                return self.finished[0]
            running = list(self._running.items())
        now = time.perf_counter()
        for tid, (start, (cpu, ready)) in running:
            try:
                cpu_now, ready_now = _schedstat(tid)
            except OSError:  # not on Linux, or the thread just ended
                continue
            return Reading(cpu_now - cpu, ready_now - ready, now - start, False)
        return None


def _schedstat(tid: int) -> tuple[float, float]:
    """Seconds thread ``tid`` of this process ran, and waited ready to run (Linux)."""
    with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
        ran, waited, _ = f.read().split()
    return int(ran) / 1e9, int(waited) / 1e9


def _cpu_and_ready(tid: int) -> tuple[float, float]:
    """This thread's seconds on the CPU and waiting for one (the CPU clock alone,
    without the wait, where schedstat is not available)."""
    try:
        return _schedstat(tid)
    except OSError:
        return time.thread_time(), 0.0


def early_choice_possible(reading: Reading) -> bool:
    """Whether a running call's reading is clear enough to choose on."""
    if reading.finished:
        return True
    if reading.wall < EARLY_S:
        return False
    return reading.share >= EARLY_CPU or reading.share <= EARLY_WAIT
