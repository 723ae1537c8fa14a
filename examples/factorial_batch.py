"""A CPU-bound batch: big factorials, sequential against process mode.

    python examples/factorial_batch.py [--count 24] [--n 20000]

Pure-Python arithmetic holds the GIL, so threads cannot run it in parallel;
processes can, one per core. The function must be defined at module level
(process mode pickles it), and the entry point guarded by ``__main__``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import fanout


def factorial_bits(n: int) -> int:
    """The size in bits of n!, computed the slow way on purpose."""
    product = 1
    for k in range(2, n + 1):
        product *= k
    return product.bit_length()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    items = [args.n + i for i in range(args.count)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    timings = {}
    answers = {}
    for mode in ("sequential", "process"):
        start = time.perf_counter()
        results = fanout.map(factorial_bits, items, mode=mode, concurrency=cores)
        timings[mode] = time.perf_counter() - start
        answers[mode] = [r.unwrap() for r in results]

    if answers["sequential"] != answers["process"]:
        print("process mode gave different answers", file=sys.stderr)
        return 1
    speedup = timings["sequential"] / timings["process"]
    print(
        f"{args.count} factorials of ~{args.n}: sequential {timings['sequential']:.2f} s, "
        f"process ({cores} workers) {timings['process']:.2f} s: {speedup:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
