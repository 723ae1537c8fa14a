"""mode="auto" against the best fixed mode, measured in the same run.

    python benchmarks/auto.py            # about a minute on 2 cores
    python benchmarks/auto.py --repeat 7

For each workload every fixed mode and ``auto`` run round-robin in one program
(so process mode's warm workers serve every later run, auto's included), each
at its default concurrency. The table shows the median seconds per mode, the
mode auto chose and why, and auto's time over the best fixed mode's.
Targets (issue 13): auto within 1.15x of the best fixed mode on every
workload, and never worse than 1.3x.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import fanout


def spin(seconds: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def cpu_10ms(x: int) -> int:
    spin(0.010)
    return x


def cpu_15ms(x: int) -> int:
    spin(0.015)
    return x


def sleep_20ms(x: int) -> int:
    time.sleep(0.020)
    return x


async def async_sleep_20ms(x: int) -> int:
    await asyncio.sleep(0.020)
    return x


def mixed(x: int) -> int:
    spin(0.005)
    time.sleep(0.005)
    return x


def trivial(x: int) -> int:
    return x + 1


WORKLOADS: list[tuple[str, Callable[..., Any], int, tuple[str, ...]]] = [
    ("CPU-bound, 200 x 10 ms", cpu_10ms, 200, ("sequential", "thread", "process")),
    ("blocking I/O, 500 x 20 ms sleeps", sleep_20ms, 500, ("thread", "process")),
    ("async I/O, 500 x 20 ms", async_sleep_20ms, 500, ("async", "thread")),
    ("mixed, 200 x (5 ms CPU + 5 ms wait)", mixed, 200, ("sequential", "thread", "process")),
    ("tiny, 100,000 trivial calls", trivial, 100_000, ("sequential", "thread", "process")),
    ("short batch, 8 x 15 ms CPU", cpu_15ms, 8, ("sequential", "thread", "process")),
]
TARGET, LIMIT = 1.15, 1.3


def timed(fn: Callable[..., Any], n: int, mode: str) -> tuple[float, str]:
    start = time.perf_counter()
    results = fanout.map(fn, range(n), mode=mode, progress=False)
    elapsed = time.perf_counter() - start
    assert results.ok and len(results) == n
    info = fanout.last_run()
    return elapsed, info.mode_reason if info is not None else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per mode (median)")
    args = parser.parse_args()
    # warm up: worker processes exist, as in a program that used process mode before
    fanout.map(trivial, range(10), mode="process", progress=False)
    print(f"{'workload':37}  {'mode':10} {'median s':>9}  note")
    verdicts = []
    for name, fn, n, modes in WORKLOADS:
        times: dict[str, list[float]] = {m: [] for m in (*modes, "auto")}
        reasons: list[str] = []
        for _ in range(args.repeat):
            for mode in times:
                elapsed, reason = timed(fn, n, mode)
                times[mode].append(elapsed)
                if mode == "auto":
                    reasons.append(reason)
        median = {m: statistics.median(t) for m, t in times.items()}
        best_mode = min(modes, key=lambda m: median[m])
        ratio = median["auto"] / median[best_mode]
        for mode in (*modes, "auto"):
            note = "best fixed" if mode == best_mode else ""
            if mode == "auto":
                chosen = max(set(reasons), key=reasons.count)
                note = f"{ratio:.2f}x best; chose {chosen}"
            print(f"{name if mode == modes[0] else '':37}  {mode:10} {median[mode]:9.3f}  {note}")
        verdicts.append((name, ratio))
    print("\ntargets: auto within 1.15x of the best fixed mode, never worse than 1.3x")
    failed = 0
    for name, ratio in verdicts:
        state = "met" if ratio <= TARGET else ("within 1.3x" if ratio <= LIMIT else "MISSED")
        failed += ratio > LIMIT
        print(f"  {name:37} {ratio:5.2f}x  {state}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
