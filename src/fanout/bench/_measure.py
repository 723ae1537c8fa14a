"""What one run costs: wall time, CPU time, peak memory, threads and processes.

Peak RSS, threads and processes come from a sampler thread (every 10 ms, over
this process and all its descendants; the sum of their RSS, so pages shared
between processes count once per process), with the process's own exact peak
from ``getrusage`` as a floor. CPU time is user + system of this process and of
its descendants, reaped or still alive (a descendant that lives less than one
sampling interval and is not our own child is missed).
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil

from fanout._classify import cores, gil_enabled

T = TypeVar("T")

SAMPLE_INTERVAL = 0.01


def fanout_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fanout")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def machine_info() -> dict[str, Any]:
    """The header of a bench: cores, Python version and build, GIL on or off."""
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return {
        "cores": cores(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "build": " ".join(platform.python_build()) + f", {platform.python_compiler()}",
        "free_threaded_build": free_threaded,
        "gil": gil_enabled(),
    }


def machine_line(machine: dict[str, Any]) -> str:
    gil = "on" if machine["gil"] else "off"
    build = "free-threaded build" if machine["free_threaded_build"] else "GIL build"
    return (
        f"{machine['cores']} cores, {machine['implementation']} {machine['python']} "
        f"({machine['build']}; {build}), GIL {gil}, {machine['platform']}"
    )


@dataclass
class Usage:
    """What one measured call used."""

    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    threads: int
    processes: int
    #: share of all the machine's CPUs that other programs used meanwhile (0..1),
    #: None when the run was too short to tell
    others_share: float | None


#: the kernel counts machine-wide CPU time in 10 ms ticks: shorter runs cannot tell
OTHERS_MIN_WALL_S = 0.25


def _machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot, in processes (steal included:
    the host's). Interrupt time is left out: loopback networking is counted there and
    belongs to no program."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "steal", 0.0))


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class _Sampler:
    """Samples RSS, thread and process counts of this process tree until stopped."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fanout-bench-sampler", daemon=True)
        self.peak_rss = 0
        self.peak_threads = 0
        self.peak_processes = 0
        #: pid -> last seen user + system CPU seconds of a descendant
        self.child_cpu: dict[int, float] = {}
        #: descendants whose parent is this process (getrusage counts them once reaped)
        self.direct: set[int] = set()
        #: CPU seconds the sampler thread itself spent (not the workload's)
        self.own_cpu = 0.0

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.sample()
        self.own_cpu = time.thread_time() - start

    def sample(self) -> None:
        try:
            with self._me.oneshot():
                rss = self._me.memory_info().rss
                # the sampler's own thread is not the workload's
                threads = self._me.num_threads() - (1 if self._thread.is_alive() else 0)
            children = self._me.children(recursive=True)
        except psutil.Error:  # pragma: no cover - our own process is always there
            return
        for child in children:
            try:
                with child.oneshot():
                    rss += child.memory_info().rss
                    threads += child.num_threads()
                    times = child.cpu_times()
                    if child.ppid() == self._me.pid:
                        self.direct.add(child.pid)
                self.child_cpu[child.pid] = times.user + times.system
            except psutil.Error:
                continue  # exited between listing and reading
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_threads = max(self.peak_threads, threads)
        self.peak_processes = max(self.peak_processes, len(children))


def _rusage_cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def own_peak_rss() -> int:
    """This process's peak RSS since it started, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss() -> int:
    return int(psutil.Process().memory_info().rss)


def tree_counts() -> tuple[int, int]:
    """Threads of this process and the number of its descendant processes."""
    me = psutil.Process()
    return me.num_threads(), len(me.children(recursive=True))


def settle(target: tuple[int, int], limit: float = 60.0) -> tuple[int, int]:
    """Wait until threads and child processes are back down to ``target``, or have
    stopped changing for 0.2 s (something stays for good), or ``limit`` s passed;
    the counts reached."""
    now = tree_counts()
    deadline = time.monotonic() + limit
    unchanged_since = time.monotonic()
    while now[0] > target[0] or now[1] > target[1]:
        if time.monotonic() >= deadline or time.monotonic() - unchanged_since >= 0.2:
            break
        time.sleep(0.01)
        previous, now = now, tree_counts()
        if now != previous:
            unchanged_since = time.monotonic()
    return now


def measure(fn: Callable[[], T], helpers: list[int] | None = None) -> tuple[T, Usage]:
    """Run ``fn()`` once and report what it used. ``helpers`` are processes working
    for the run (a local server) that are not ours: not counted as other programs."""
    helpers = helpers or []
    sampler = _Sampler()
    sampler.sample()
    cpu_at_start = dict(sampler.child_cpu)
    before_self, before_kids = _rusage_cpu()
    machine_before, helpers_before = _machine_busy_s(), _cpu_of(helpers)
    with sampler:
        start = time.perf_counter()
        value = fn()
        wall = time.perf_counter() - start
        after_self, after_kids = _rusage_cpu()
        machine_after, helpers_after = _machine_busy_s(), _cpu_of(helpers)
    alive = {p.pid for p in psutil.Process().children(recursive=True)}
    # getrusage counts only our own children once we reaped them; the rest (still
    # running, or a forkserver's children) count as last sampled
    unreaped = sum(
        cpu - cpu_at_start.get(pid, 0.0)
        for pid, cpu in sampler.child_cpu.items()
        if pid in alive or pid not in sampler.direct
    )
    own = (after_self - before_self) - sampler.own_cpu
    cpu = max(0.0, own) + (after_kids - before_kids) + unreaped
    peak = max(sampler.peak_rss, own_peak_rss())
    others = (machine_after - machine_before) - (after_self - before_self) - cpu + max(0.0, own)
    others -= helpers_after - helpers_before
    share = None
    if wall >= OTHERS_MIN_WALL_S:
        share = min(1.0, max(0.0, others / (wall * cores())))
    return value, Usage(wall, cpu, peak, sampler.peak_threads, sampler.peak_processes, share)
