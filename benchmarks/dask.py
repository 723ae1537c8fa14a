"""Dask mode against the hand-written Dask equivalents, measured in one run on a
2-worker local cluster (worker processes, one thread each, loopback only).

    python benchmarks/dask.py            # full run (about two minutes on 2 cores)
    python benchmarks/dask.py --quick    # smaller sizes, 1 repeat (about 30 s)

Sections (issue 10, item 5):

1. 10,000 trivial tasks: ``fanout.map(..., executor=DaskExecutor(client))`` against
   ``client.map`` + ``as_completed`` and ``client.map`` + ``client.gather``;
   goal: fanout >= 1.0x the hand-written code (it batches tiny calls per task);
2. 200 CPU-bound tasks of about 50 ms (a pure-Python loop calibrated here):
   against the sequential loop (goal >= 1.6x on 2 workers; the limit is 2.0x)
   and against ``client.map`` + ``client.gather`` (goal >= 0.95x);
3. peak RSS of a client process that runs 1,000,000 trivial items through
   ``fanout.imap`` (goal < 150 MB), against one that only submits
   ``client.map`` over a list (every future at once; measured on fewer items).

Every cell has a fixed size; a figure is the median of ``--repeat`` runs, and a
ratio is reference time / fanout time from the same run (above 1: fanout is
faster). Ratios are printed, never asserted; a machine shared with other work
gives noisy numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# This script is named like the package it measures, and Python puts its folder
# first on the import path: take it off, or "import dask" would import this file.
if os.path.dirname(os.path.abspath(__file__)) in (os.path.abspath(p) for p in sys.path[:1]):
    del sys.path[0]

import dask
import distributed

import fanout

CPU_SECONDS = 0.05
_loops_for_cpu_seconds = 0


def trivial(x: int) -> int:
    return x


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def cpu_task(n: int) -> int:
    """About CPU_SECONDS of pure-Python work (``n`` loops, calibrated by the caller)."""
    return spin(n)


def calibrate() -> int:
    """Loops of ``spin`` that take about CPU_SECONDS on an idle core of this machine
    (the fastest of several timings: other load only slows a timing down)."""
    n = 20_000
    while True:
        took = min(_time_spin(n) for _ in range(5))
        if took > 0.01:
            return max(1, int(n * CPU_SECONDS / took))
        n *= 4


def _time_spin(n: int) -> float:
    start = time.perf_counter()
    spin(n)
    return time.perf_counter() - start


def timed(contenders: list[Callable[[], Any]], repeat: int) -> list[float]:
    """The median time of each contender; they take turns, so that a change in the
    machine's load during the run falls on all of them alike."""
    times: list[list[float]] = [[] for _ in contenders]
    for _ in range(repeat):
        for fn, spent in zip(contenders, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


# ----------------------------------------------------------- the contenders
def with_fanout(client: distributed.Client, fn: Callable[[int], int], items: list[int]) -> None:
    results = fanout.map(fn, items, executor=fanout.DaskExecutor(client), progress=False)
    assert results.ok


def with_as_completed(client: distributed.Client, fn: Callable[[int], int],
                      items: list[int]) -> None:
    futures = client.map(fn, items, pure=False)
    values = [future.result() for future in distributed.as_completed(futures)]
    assert len(values) == len(items)


def with_gather(client: distributed.Client, fn: Callable[[int], int], items: list[int]) -> None:
    values = client.gather(client.map(fn, items, pure=False))
    assert len(values) == len(items)


# ----------------------------------------------------------- memory, in a child
def memory_child(kind: str, address: str, n: int) -> None:
    client = distributed.Client(address, set_as_default=False)
    start = time.perf_counter()
    if kind == "fanout":
        ok = sum(r.ok for r in fanout.imap(trivial, range(n),
                                           executor=fanout.DaskExecutor(client)))
        assert ok == n
    else:
        futures = client.map(trivial, range(n), pure=False)  # every future, at once
        client.cancel(futures)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    client.close()
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds}))


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM). Not ``ru_maxrss``: Linux carries
    that over an exec from the forked copy of the parent, here the process holding
    the cluster's scheduler, which grows from run to run."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (this measures on Linux only)")


def peak_of(kind: str, address: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", kind, address, str(n)],
        capture_output=True, text=True, timeout=900, check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 repeat")
    parser.add_argument("--repeat", type=int, default=None, help="runs per cell (default 3)")
    parser.add_argument("--memory-child", nargs=3, metavar=("KIND", "ADDRESS", "N"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        kind, address, n = args.memory_child
        memory_child(kind, address, int(n))
        return
    repeat = args.repeat or (1 if args.quick else 3)
    n_trivial = 2_000 if args.quick else 10_000
    n_cpu = 60 if args.quick else 200
    n_imap = 200_000 if args.quick else 1_000_000
    n_map_memory = 20_000 if args.quick else 100_000

    loops = calibrate()  # before the cluster exists: on idle cores
    # as fanout's embedded cluster is, with two workers
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
    client = distributed.Client(cluster)  # as users write it (as_completed needs it)
    try:
        print(f"# fanout dask mode: {platform_line()}")
        print(f"# 2-worker LocalCluster (1 thread each), median of {repeat} run(s); "
              "ratio = reference time / fanout time\n")
        with_fanout(client, trivial, list(range(100)))  # workers warm, imports done
        with_gather(client, trivial, list(range(100)))

        items = list(range(n_trivial))
        print(f"## {n_trivial:,} trivial tasks", file=sys.stderr)
        t_fanout, t_ac, t_gather = timed([
            lambda: with_fanout(client, trivial, items),
            lambda: with_as_completed(client, trivial, items),
            lambda: with_gather(client, trivial, items),
        ], repeat)
        rows = [
            (f"{n_trivial:,} trivial tasks", "fanout.map", t_fanout, None, ""),
            ("", "client.map + as_completed", t_ac, t_ac / t_fanout, ">= 1.0"),
            ("", "client.map + gather", t_gather, t_gather / t_fanout, ">= 1.0"),
        ]

        cpu_items = [loops] * n_cpu
        print(f"## {n_cpu} CPU tasks of ~{CPU_SECONDS * 1000:g} ms", file=sys.stderr)
        [t_seq] = timed([lambda: [cpu_task(n) for n in cpu_items]], 1)
        t_fanout, t_gather = timed([
            lambda: with_fanout(client, cpu_task, cpu_items),
            lambda: with_gather(client, cpu_task, cpu_items),
        ], repeat)
        per_task = f"{t_seq / n_cpu * 1000:.0f} ms each in the loop"
        rows += [
            (f"{n_cpu} CPU tasks ({per_task})", "fanout.map", t_fanout, None, ""),
            ("", "sequential loop", t_seq, t_seq / t_fanout, ">= 1.6 (max 2.0)"),
            ("", "client.map + gather", t_gather, t_gather / t_fanout, ">= 0.95"),
        ]
        print(table(rows))

        address = cluster.scheduler_address
        print(f"## peak RSS: {n_imap:,} items through fanout.imap", file=sys.stderr)
        mem_fanout = peak_of("fanout", address, n_imap)
        print(f"## peak RSS: client.map over {n_map_memory:,} items", file=sys.stderr)
        mem_map = peak_of("client.map", address, n_map_memory)
        print("\n| client process | items | peak RSS | goal |\n|---|---:|---:|---|")
        print(f"| fanout.imap (all run, {mem_fanout['seconds']:.1f} s) | {n_imap:,} | "
              f"{mem_fanout['peak_mb']:.0f} MB | < 150 MB |")
        print(f"| client.map over a list (submitted only, then cancelled) | "
              f"{n_map_memory:,} | {mem_map['peak_mb']:.0f} MB | |")
    finally:
        client.close(timeout=600)  # the scheduler may still be forgetting client.map's tasks
        cluster.close()


def platform_line() -> str:
    import platform

    return (f"Python {platform.python_version()}, dask {dask.__version__}, "
            f"distributed {distributed.__version__}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f} at start")


def table(rows: list[tuple[str, str, float, float | None, str]]) -> str:
    lines = ["| workload | code | seconds | ratio | goal |", "|---|---|---:|---:|---|"]
    for workload, code, seconds, ratio, goal in rows:
        shown = f"{ratio:.2f}x" if ratio is not None else ""
        lines.append(f"| {workload} | {code} | {seconds:.3f} | {shown} | {goal} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
