"""Overhead of fanout against the stdlib and peer equivalents, measured in one run.

    python benchmarks/overhead.py            # full run (about 2 minutes on 2 cores)
    python benchmarks/overhead.py --quick    # 1 repeat, smaller sizes (~15 s)

Sections (issue 2, item 6):

1. trivial tasks: tasks/s of fanout in each mode against ThreadPoolExecutor.map,
   asyncio.gather + Semaphore, a hand-written asyncio worker pool,
   ProcessPoolExecutor.map at several chunksizes, multiprocessing.Pool.map,
   joblib (loky), mpire and a plain loop;
2. 2,000 calls of a 50 ms sleep at concurrency 100, against the theoretical
   minimum (2000 / 100 * 0.05 s = 1.0 s);
3. peak RSS of ``fanout.imap`` over a 10,000,000-item generator against
   ``ThreadPoolExecutor.map`` over 2,000,000 items, each in a fresh subprocess;
4. process mode on small CPU work, each program a fresh subprocess: 8 calls of
   ~15 ms CPU at concurrency 2, repeated 5 times in one program (median),
   against the sequential loop and joblib's warm workers; and the first call of
   a program against a fresh ``ProcessPoolExecutor(2)``.

Every cell has a fixed size (never a duration); a cell's figure is the median
of ``--repeat`` runs, and a ratio is fanout / reference from the same run.
Pools that are made per call (``ProcessPoolExecutor``, ``multiprocessing.Pool``,
mpire) pay their start-up in every run, as a user pays it; fanout's process
workers and joblib's loky workers are kept between calls, so after the warm-up
their cells show warm workers (section 4 measures the first call alone).
Ratios are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fanout

SLEEP = 0.05
SLEEP_CONCURRENCY = 100

# --------------------------------------------------------------- task functions
# Module level so process workers can import them (forkserver and spawn re-import
# this script as __mp_main__; the __main__ guard below keeps that import inert).


def trivial(x: int) -> int:
    """The smallest useful call: the overhead is all there is."""
    return x


async def atrivial(x: int) -> int:
    """The async twin of ``trivial`` (never suspends)."""
    return x


def sleepy(x: int) -> int:
    """Blocking 50 ms (thread mode's workload)."""
    time.sleep(SLEEP)
    return x


async def asleepy(x: int) -> int:
    """Non-blocking 50 ms (async mode's workload)."""
    await asyncio.sleep(SLEEP)
    return x


# ------------------------------------------------------------------ measuring


@dataclass
class Cell:
    """One measured workload: ``run(n)`` does the whole job, pool start-up included."""

    name: str
    run: Callable[[int], Any]
    n: int
    times: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how noisy the repeats were."""
        return (max(self.times) - min(self.times)) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Compare:
    """A ratio to print: fanout's cell against a reference cell (rates, or times to a minimum)."""

    cell: str
    ref: str
    target: float | None = None  # the goal, as a ratio; None = context only
    note: str = ""


def _check(name: str, out: Any, n: int) -> None:
    """Refuse a figure from a run that did not do the work."""
    values = list(out)
    if len(values) != n:
        raise SystemExit(f"benchmark bug: {name} returned {len(values)} results for {n} items")
    first = values[0]
    if isinstance(first, fanout.Result):
        bad = [r for r in values if not r.ok]
        if bad:
            raise SystemExit(
                f"benchmark bug: {name} failed {len(bad)} calls, e.g. {bad[0].error!r}"
            )
        values = [r.value for r in values]
    if values[0] != 0 or values[-1] != n - 1:
        raise SystemExit(f"benchmark bug: {name} returned wrong values")


def measure_all(cells: list[Cell], repeat: int) -> None:
    """Time every cell ``repeat`` times, round-robin, after a small warm-up of each.

    Round-robin rather than cell after cell, so that a burst of load from
    elsewhere on the machine hits fanout and its references alike.
    """
    for cell in cells:  # imports, first-call costs, fork servers
        warm = min(cell.n, 500)
        _check(cell.name, cell.run(warm), warm)
    for round_ in range(repeat):
        print(f"  round {round_ + 1}/{repeat}:", end="", flush=True, file=sys.stderr)
        for cell in cells:
            gc.collect()
            start = time.perf_counter()
            out = cell.run(cell.n)
            cell.times.append(time.perf_counter() - start)
            _check(cell.name, out, cell.n)
            del out
            print(".", end="", flush=True, file=sys.stderr)
        print(file=sys.stderr)


# -------------------------------------------------------- section 1: trivial


def _fanout(fn: Callable[..., Any], mode: str, **kw: Any) -> Callable[[int], Any]:
    return lambda n: fanout.map(fn, range(n), mode=mode, **kw)  # type: ignore[arg-type]


def _tpe_map(workers: int, fn: Callable[[int], Any] = trivial) -> Callable[[int], Any]:
    def run(n: int) -> list[Any]:
        with ThreadPoolExecutor(workers) as ex:
            return list(ex.map(fn, range(n)))

    return run


def _run_in_executor_each(n: int) -> list[Any]:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(8) as ex:
            return await asyncio.gather(*(loop.run_in_executor(ex, trivial, i) for i in range(n)))

    return asyncio.run(main())


def _gather_semaphore(
    fn: Callable[[int], Any], limit: int, uvloop: bool = False
) -> Callable[[int], Any]:
    async def main(n: int) -> list[Any]:
        sem = asyncio.Semaphore(limit)

        async def one(x: int) -> Any:
            async with sem:
                return await fn(x)

        return await asyncio.gather(*(one(i) for i in range(n)))

    def run(n: int) -> list[Any]:
        if uvloop:
            import uvloop as uv

            with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
                return runner.run(main(n))
        return asyncio.run(main(n))

    return run


def _worker_pool(fn: Callable[[int], Any], workers: int) -> Callable[[int], Any]:
    """What a careful user writes: N worker coroutines on a bounded queue."""

    async def main(n: int) -> list[Any]:
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=2 * workers)
        out: list[Any] = [None] * n

        async def worker() -> None:
            while True:
                i = await queue.get()
                if i is None:
                    return
                out[i] = await fn(i)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        for i in range(n):
            await queue.put(i)
        for _ in range(workers):
            await queue.put(None)
        await asyncio.gather(*tasks)
        return out

    return lambda n: asyncio.run(main(n))


def _fanout_amap_stdlib_loop(fn: Callable[[int], Any]) -> Callable[[int], Any]:
    async def main(n: int) -> list[Any]:
        return await fanout.amap(fn, range(n), mode="async")

    return lambda n: asyncio.run(main(n))


def _ppe_map(chunksize: int) -> Callable[[int], Any]:
    def run(n: int) -> list[Any]:
        with ProcessPoolExecutor(2) as ex:
            return list(ex.map(trivial, range(n), chunksize=chunksize))

    return run


def _mp_pool(n: int) -> list[Any]:
    with multiprocessing.Pool(2) as pool:
        return pool.map(trivial, range(n))


def _joblib(n: int) -> list[Any]:
    from joblib import Parallel, delayed

    return Parallel(n_jobs=2)(delayed(trivial)(i) for i in range(n))  # type: ignore[no-any-return]


def _mpire(n: int) -> list[Any]:
    from mpire import WorkerPool  # type: ignore[attr-defined]

    with WorkerPool(n_jobs=2) as pool:
        return pool.map(trivial, range(n))  # type: ignore[no-any-return]


_ISOLATED = {"joblib Parallel(n_jobs=2) (loky, warm)": _joblib, "mpire WorkerPool(2).map": _mpire}


def isolated_child(name: str, n: int, repeat: int) -> None:
    """Runs in a fresh interpreter: a warm-up, then ``repeat`` timed runs; one JSON line."""
    cell = Cell(name, _ISOLATED[name], n)
    measure_all([cell], repeat)
    print(json.dumps(cell.times))


def _isolated_times(name: str, n: int, repeat: int) -> list[float]:
    cmd = [sys.executable, os.path.abspath(__file__), "--isolated-child", name, str(n),
           str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cell {name} failed:\n{done.stderr}")
    times: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def _plain_loop(n: int) -> list[Any]:
    return [trivial(i) for i in range(n)]


def _careful_loop(n: int) -> list[Any]:
    """A loop that records what fanout records: value or error, and the time of each call."""
    clock = time.perf_counter
    out: list[Any] = []
    for i in range(n):
        start = clock()
        try:
            value = trivial(i)
        except Exception as exc:
            out.append((False, exc, clock() - start))
        else:
            out.append((True, value, clock() - start))
    return [o[1] for o in out]


def _optional(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def section_trivial(n: int, repeat: int) -> tuple[list[Cell], list[Compare]]:
    small = max(1, n // 10)  # for references that manage only a few thousand calls/s
    cells = [
        Cell("ThreadPoolExecutor(8).map", _tpe_map(8), n),
        Cell("run_in_executor per item (TPE 8)", _run_in_executor_each, small),
        Cell("fanout thread, concurrency=8", _fanout(trivial, "thread", concurrency=8), n),
        Cell("fanout thread, default", _fanout(trivial, "thread"), n),
        Cell("gather + Semaphore(100)", _gather_semaphore(atrivial, 100), n),
        Cell("100 workers on asyncio.Queue", _worker_pool(atrivial, 100), n),
        *([Cell("gather + Semaphore(100), uvloop",
                _gather_semaphore(atrivial, 100, uvloop=True), n)] if _optional("uvloop") else []),
        Cell("fanout async, default", _fanout(atrivial, "async"), n),
        Cell("fanout.amap under asyncio.run", _fanout_amap_stdlib_loop(atrivial), n),
    ]
    ppe = [Cell(f"ProcessPoolExecutor(2).map, chunksize={c}", _ppe_map(c), small if c == 1 else n)
           for c in (1, 100, 1000, 10000)]
    peers = [Cell("multiprocessing.Pool(2).map", _mp_pool, n)]
    # joblib and mpire leave threads running after a call (loky's manager and
    # feeder, tqdm's monitor): they run in a program of their own, so that the
    # other cells never run (or fork) in a multi-threaded process because of them.
    isolated = []
    if _optional("joblib"):
        # loky keeps its workers between calls: no start-up after the warm-up
        isolated.append(Cell("joblib Parallel(n_jobs=2) (loky, warm)", _joblib, n))
    if _optional("mpire"):
        isolated.append(Cell("mpire WorkerPool(2).map", _mpire, n))
    big = 10 * n  # start-up weighs 10x less: shows the per-item cost alone
    cells += ppe + peers + [
        Cell("fanout process, no chunksize", _fanout(trivial, "process"), n),
        Cell("ProcessPoolExecutor(2).map, chunksize=10000, 10x items", _ppe_map(10000), big),
        Cell("fanout process, no chunksize, 10x items", _fanout(trivial, "process"), big),
        Cell("plain loop", _plain_loop, n),
        Cell("loop recording value/error/time", _careful_loop, n),
        Cell("fanout sequential", _fanout(trivial, "sequential"), n),
    ]
    measure_all(cells, repeat)
    for cell in isolated:
        print(f"  {cell.name} in a program of its own ...", file=sys.stderr)
        cell.times = _isolated_times(cell.name, n, repeat)
    peers += isolated
    cells += isolated

    best = max(ppe, key=lambda c: c.rate).name
    compares = [
        Compare("fanout thread, concurrency=8", "ThreadPoolExecutor(8).map", 1.0),
        Compare("fanout thread, default", "ThreadPoolExecutor(8).map", 1.0),
        Compare("fanout thread, concurrency=8", "run_in_executor per item (TPE 8)"),
        Compare("fanout async, default", "gather + Semaphore(100)", 1.0),
        Compare("fanout async, default", "100 workers on asyncio.Queue", None, "the aim"),
        *([Compare("fanout async, default", "gather + Semaphore(100), uvloop")]
          if _optional("uvloop") else []),
        Compare("fanout.amap under asyncio.run", "gather + Semaphore(100)", None,
                "same loop as the reference"),
        Compare("fanout process, no chunksize", best, 1.0, "best hand-tuned chunksize"),
        *(Compare("fanout process, no chunksize", p.name,
                  1.0 if p.name.startswith("multiprocessing") else None) for p in peers),
        Compare("fanout process, no chunksize, 10x items",
                "ProcessPoolExecutor(2).map, chunksize=10000, 10x items", 1.0,
                "10x the items"),
        Compare("fanout sequential", "plain loop"),
        Compare("fanout sequential", "loop recording value/error/time"),
    ]
    return cells, compares


# ---------------------------------------------------------- section 2: sleep


def section_sleep(n: int, repeat: int) -> tuple[list[Cell], list[Compare], float]:
    minimum = n / SLEEP_CONCURRENCY * SLEEP
    c = SLEEP_CONCURRENCY
    cells = [
        Cell("ThreadPoolExecutor(100).map, time.sleep", _tpe_map(c, sleepy), n),
        Cell("fanout thread, concurrency=100", _fanout(sleepy, "thread", concurrency=c), n),
        Cell("gather + Semaphore(100), asyncio.sleep", _gather_semaphore(asleepy, c), n),
        Cell("fanout async, concurrency=100", _fanout(asleepy, "async", concurrency=c), n),
    ]
    measure_all(cells, repeat)
    compares = [
        Compare("fanout thread, concurrency=100", "minimum", 1.05),
        Compare("fanout async, concurrency=100", "minimum", 1.05),
        Compare("fanout thread, concurrency=100", "ThreadPoolExecutor(100).map, time.sleep"),
        Compare("fanout async, concurrency=100", "gather + Semaphore(100), asyncio.sleep"),
    ]
    return cells, compares, minimum


# --------------------------------------------------------- section 3: memory


def _gen(n: int) -> Iterator[int]:
    """A plain generator: no len(), so nobody can size anything from it."""
    yield from range(n)


def _maxrss_mb() -> float:
    """Peak RSS of this process so far, in MB.

    On Linux VmHWM (the peak of this address space) is read rather than
    ru_maxrss: the latter survives exec, so a child started with vfork would
    report its parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def memory_child(kind: str, n: int) -> None:
    """Runs in a fresh interpreter; prints one JSON line with peak RSS and time."""
    base = _maxrss_mb()
    start = time.perf_counter()
    count = ok = 0
    if kind == "fanout":
        for r in fanout.imap(trivial, _gen(n), mode="thread"):
            count += 1
            ok += r.ok
    elif kind == "tpe":
        with ThreadPoolExecutor(8) as ex:
            for _ in ex.map(trivial, _gen(n)):
                count += 1
                ok += 1
    elif kind != "baseline":
        raise SystemExit(f"unknown memory cell {kind!r}")
    elapsed = time.perf_counter() - start
    print(json.dumps({"kind": kind, "n": n, "count": count, "ok": ok, "seconds": elapsed,
                      "base_mb": base, "peak_mb": _maxrss_mb()}))


# The interpreter alone (no fanout, no this script), peak read as _maxrss_mb does.
_BARE_PEAK = """
import json, resource, sys
scale = 1 if sys.platform == "darwin" else 1024
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
try:
    with open("/proc/self/status", encoding="ascii") as fh:
        peak = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))
except OSError:
    pass
print(json.dumps({"peak_mb": peak / 1e6}))
"""


def _child(kind: str, n: int, *, bare: bool = False) -> dict[str, Any]:
    if bare:  # the interpreter alone, with the same peak reading
        cmd = [sys.executable, "-c", _BARE_PEAK]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", kind, str(n)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"memory cell {kind} failed:\n{done.stderr}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not bare and data["count"] != n:
        raise SystemExit(f"benchmark bug: memory cell {kind} saw {data['count']} of {n} results")
    return data


def section_memory(n_fanout: int, n_tpe: int) -> list[tuple[str, int, float | None, float, str]]:
    """(name, items, seconds, peak MB, note) per cell."""
    out: list[tuple[str, int, float | None, float, str]] = []
    print("  bare python ...", file=sys.stderr)
    bare = _child("bare", 0, bare=True)
    out.append(("bare python", 0, None, bare["peak_mb"], ""))
    print("  python + import fanout ...", file=sys.stderr)
    base = _child("baseline", 0)
    out.append(("python + import fanout", 0, None, base["peak_mb"], "baseline"))
    print(f"  fanout.imap over {n_fanout:,} ...", file=sys.stderr)
    fan = _child("fanout", n_fanout)
    growth = fan["peak_mb"] - base["peak_mb"]
    out.append(("fanout.imap thread, generator", n_fanout, fan["seconds"], fan["peak_mb"],
                f"+{growth:.0f} MB over baseline"))
    print(f"  ThreadPoolExecutor.map over {n_tpe:,} ...", file=sys.stderr)
    tpe = _child("tpe", n_tpe)
    out.append(("ThreadPoolExecutor(8).map, generator", n_tpe, tpe["seconds"], tpe["peak_mb"],
                f"{(tpe['peak_mb'] - base['peak_mb']) * 1e6 / n_tpe:,.0f} B/item"))
    return out


# ------------------------------------------------- section 4: process mode

CPU_CALLS = 8
CPU_REPEATS = 5


def cpu_work(n: int) -> int:
    """Pure-Python CPU work; ``n`` is calibrated to about 15 ms."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _calibrate(seconds: float = 0.015) -> int:
    """``n`` for a ``cpu_work(n)`` of ``seconds``: the fastest of several timings
    (the one least disturbed by other work on the machine)."""
    n = 200_000
    best = min(_timed_cpu_work(n) for _ in range(7))
    return max(1, int(n * seconds / best))


def _timed_cpu_work(n: int) -> float:
    start = time.perf_counter()
    cpu_work(n)
    return time.perf_counter() - start


def process_child(kind: str, n: int) -> None:
    """Runs in a fresh interpreter: times ``kind`` and prints one JSON line of seconds.

    ``...-module`` kinds call ``cpu_work`` from this file imported as a module
    (pickled by reference); the others call it from ``__main__`` (by value)."""
    items = [n] * CPU_CALLS
    work = cpu_work
    if kind.endswith("-module"):
        import overhead  # this file, as an importable module

        work = overhead.cpu_work
        kind = kind.removesuffix("-module")
    expected = work(n)
    times: list[float] = []

    def timed(call: Callable[[], list[Any]]) -> None:
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        values = [r.value if isinstance(r, fanout.Result) else r for r in out]
        if values != [expected] * CPU_CALLS:
            raise SystemExit(f"benchmark bug: {kind} returned {values!r}")

    def fresh_ppe() -> list[Any]:
        with ProcessPoolExecutor(2) as ex:
            return list(ex.map(work, items))

    if kind == "sequential":
        for _ in range(CPU_REPEATS):
            timed(lambda: [work(x) for x in items])
    elif kind == "fanout":
        for _ in range(CPU_REPEATS):
            timed(lambda: fanout.map(work, items, mode="process", concurrency=2))
    elif kind == "joblib":
        from joblib import Parallel, delayed

        for _ in range(CPU_REPEATS):
            timed(lambda: Parallel(n_jobs=2)(delayed(work)(x) for x in items))
    elif kind == "first-fanout-map":
        timed(lambda: fanout.map(work, items, mode="process", concurrency=2))
    elif kind == "first-fanout-amap":
        timed(lambda: asyncio.run(fanout.amap(work, items, mode="process", concurrency=2)))
    elif kind == "first-ppe":
        timed(fresh_ppe)
    else:
        raise SystemExit(f"unknown process cell {kind!r}")
    print(json.dumps(times))


def _process_cell(kind: str, n: int) -> list[float]:
    cmd = [sys.executable, os.path.abspath(__file__), "--process-child", kind, str(n)]
    # Bytecode caching on, as for an installed package (pip compiles it): with
    # PYTHONDONTWRITEBYTECODE set (some containers do), every fresh program would
    # compile fanout's lazily imported modules inside its first call, while the
    # standard library's come precompiled.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          env=env)
    if done.returncode != 0:
        raise SystemExit(f"process cell {kind} failed:\n{done.stderr}")
    times: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def section_process(repeat: int) -> tuple[list[Cell], list[Compare]]:
    """Each program is a fresh interpreter; warm cells take the median of the 5 calls
    in one program, first-call cells one call per program. ``repeat`` programs each."""
    n = _calibrate()
    warm = ["sequential", "fanout"] + (["joblib"] if _optional("joblib") else [])
    first = ["first-fanout-map", "first-fanout-amap", "first-ppe",
             "first-fanout-map-module", "first-fanout-amap-module", "first-ppe-module"]
    names = {
        "sequential": "8 x 15 ms, sequential loop (5 calls, median)",
        "fanout": "8 x 15 ms, fanout process c=2 (5 calls, median)",
        "joblib": "8 x 15 ms, joblib Parallel(n_jobs=2) (5 calls, median)",
        "first-fanout-map": "first call: fanout.map process c=2",
        "first-fanout-amap": "first call: asyncio.run(fanout.amap) process c=2",
        "first-ppe": "first call: fresh ProcessPoolExecutor(2).map",
        "first-fanout-map-module": "first call, module fn: fanout.map process c=2",
        "first-fanout-amap-module": "first call, module fn: asyncio.run(fanout.amap)",
        "first-ppe-module": "first call, module fn: fresh ProcessPoolExecutor(2)",
    }
    cells = {k: Cell(names[k], lambda _n: None, CPU_CALLS) for k in warm + first}
    for round_ in range(repeat):
        print(f"  round {round_ + 1}/{repeat}:", end="", flush=True, file=sys.stderr)
        for kind in warm + first:
            times = _process_cell(kind, n)
            cells[kind].times.append(statistics.median(times))
            print(".", end="", flush=True, file=sys.stderr)
        print(file=sys.stderr)
    fan, ppe = names["fanout"], names["first-ppe"]
    compares = [
        Compare(fan, names["sequential"], 1 / 0.6, "<=0.6x the sequential time"),
        *([Compare(fan, names["joblib"], 1.0, "joblib's warm workers")] if "joblib" in warm
          else []),
        Compare(names["first-fanout-map"], ppe, 1.0),
        Compare(names["first-fanout-amap"], ppe, 1.0),
        Compare(names["first-fanout-map-module"], names["first-ppe-module"], 1.0),
        Compare(names["first-fanout-amap-module"], names["first-ppe-module"], 1.0),
    ]
    return list(cells.values()), compares


# ------------------------------------------------------------------- report


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _verdict(ratio: float, target: float, higher_is_better: bool = True) -> str:
    met = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    return f"{sign}{target:.2f}x {'met' if met else 'MISSED'}"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def header(args: argparse.Namespace) -> str:
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "-"

    cpu = platform.processor() or platform.machine()
    loop = "uvloop" if _optional("uvloop") else "asyncio"
    lines = [
        "fanout overhead benchmark" + (" (--quick)" if args.quick else ""),
        f"  machine : {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"  python  : {platform.python_implementation()} {platform.python_version()}",
        f"  fanout {version('fanout')}, joblib {version('joblib')}, mpire {version('mpire')}, "
        f"uvloop {version('uvloop')} (fanout's sync API loop: {loop})",
        f"  repeats : {args.repeat} (median); pools made per call pay their start-up in every "
        "cell, fanout's process workers and joblib's are warm after the warm-up; "
        f"multiprocessing default start method: {multiprocessing.get_start_method()}",
        *(["  skipped : the rows of " + " and ".join(missing) + " (not installed: "
            "pip install -e '.[peers]')"] if (missing := [m for m in ("joblib", "mpire")
                                                          if not _optional(m)]) else []),
        f"  date    : {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        f"  load    : {_load()} at the start (other work on the machine makes figures noisy;"
        " see the spread column)",
    ]
    return "\n".join(lines)


def report_cells(title: str, cells: list[Cell], minimum: float | None = None) -> str:
    rows = []
    for c in cells:
        last = f"{c.seconds / minimum:.3f}x" if minimum else f"{c.rate:,.0f}"
        rows.append([c.name, f"{c.n:,}", f"{c.seconds:.3f}", f"{c.spread:.0%}", last])
    last_head = f"/ minimum {minimum:.2f} s" if minimum else "tasks/s"
    return _table([title, "items", "median s", "spread", last_head], rows, {1, 2, 3, 4})


def report_ratios(cells: list[Cell], compares: list[Compare], minimum: float | None = None,
                  ) -> tuple[str, list[tuple[str, str]]]:
    """Ratios fanout / reference (throughput), or time / minimum (lower is better)."""
    by_name = {c.name: c for c in cells}
    rows: list[list[str]] = []
    verdicts: list[tuple[str, str]] = []
    for cmp in compares:
        cell = by_name[cmp.cell]
        if cmp.ref == "minimum":
            assert minimum is not None
            ratio, higher = cell.seconds / minimum, False
            ref = f"theoretical minimum {minimum:.2f} s"
        else:
            ratio, higher = cell.rate / by_name[cmp.ref].rate, True
            ref = cmp.ref
        verdict = _verdict(ratio, cmp.target, higher) if cmp.target is not None else "context"
        if cmp.note:
            verdict = f"{verdict} ({cmp.note})"
        if cmp.target is not None:
            verdicts.append((cmp.cell, f"{ratio:.2f}x {ref}: {verdict}"))
        rows.append([cmp.cell, ref, f"{ratio:.2f}x", verdict])
    return _table(["fanout cell", "reference", "ratio", "target"], rows, {2}), verdicts


def report_memory(cells: list[tuple[str, int, float | None, float, str]],
                  ) -> tuple[str, list[tuple[str, str]]]:
    table: list[list[str]] = []
    verdicts: list[tuple[str, str]] = []
    for name, n, seconds, peak, note in cells:
        rate = f"{n / seconds:,.0f}" if seconds else ""
        if name.startswith("fanout"):
            verdict = f"<100 MB {'met' if peak < 100 else 'MISSED'}"
            verdicts.append((f"{name} ({n:,} items)", f"peak {peak:.0f} MB: {verdict}"))
            note = f"{note}; {verdict}"
        table.append([name, f"{n:,}" if n else "", f"{seconds:.1f}" if seconds else "", rate,
                      f"{peak:,.0f}", note])
    text = _table(["peak RSS (fresh process)", "items", "s", "items/s", "peak MB", "note"], table,
                  {1, 2, 3, 4})
    return text, verdicts


def _dump_cells(cells: list[Cell]) -> list[dict[str, Any]]:
    return [{"name": c.name, "n": c.n, "times": c.times, "median": c.seconds, "rate": c.rate}
            for c in cells]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--isolated-child":
        isolated_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--process-child":
        process_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 repeat and smaller sizes (a smoke run)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per cell; the median is reported (default 3, --quick 1)")
    parser.add_argument("--only", choices=("trivial", "sleep", "memory", "process"),
                        action="append",
                        help="run only these sections (repeatable)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    sections = args.only or ["trivial", "sleep", "memory", "process"]
    n_trivial = 20_000 if args.quick else 100_000
    n_sleep = 2_000  # even with --quick: the target is defined at this size (~1 s a cell)
    n_mem_fanout, n_mem_tpe = (1_000_000, 200_000) if args.quick else (10_000_000, 2_000_000)

    print(header(args))
    verdicts: list[tuple[str, str]] = []
    dump: dict[str, Any] = {}
    if "trivial" in sections:
        print(f"\n[1/4] {n_trivial:,} trivial tasks per cell", file=sys.stderr)
        cells, compares = section_trivial(n_trivial, args.repeat)
        ratios, v = report_ratios(cells, compares)
        verdicts += v
        print("\n" + report_cells("trivial tasks", cells) + "\n\n" + ratios)
        dump["trivial"] = _dump_cells(cells)
    if "sleep" in sections:
        print(f"\n[2/4] {n_sleep:,} sleeps of {SLEEP * 1000:.0f} ms", file=sys.stderr)
        cells, compares, minimum = section_sleep(n_sleep, args.repeat)
        title = f"{SLEEP * 1000:.0f} ms sleep, concurrency {SLEEP_CONCURRENCY}"
        ratios, v = report_ratios(cells, compares, minimum)
        verdicts += v
        print("\n" + report_cells(title, cells, minimum) + "\n\n" + ratios)
        dump["sleep"] = {"minimum": minimum, "cells": _dump_cells(cells)}
    if "memory" in sections:
        print("\n[3/4] peak memory, fresh subprocesses", file=sys.stderr)
        mem = section_memory(n_mem_fanout, n_mem_tpe)
        text, v = report_memory(mem)
        verdicts += v
        print("\n" + text)
        dump["memory"] = [dict(zip(("name", "n", "seconds", "peak_mb", "note"), c, strict=True))
                          for c in mem]
    if "process" in sections:
        print("\n[4/4] process mode, 8 calls of ~15 ms CPU, fresh programs", file=sys.stderr)
        cells, compares = section_process(args.repeat)
        ratios, v = report_ratios(cells, compares)
        verdicts += v
        print("\n" + report_cells("process mode, small CPU work", cells) + "\n\n" + ratios)
        dump["process"] = _dump_cells(cells)
    print(f"\nload average at the end: {_load()}")
    if verdicts:
        print("\ntargets")
        width = max(len(name) for name, _ in verdicts)
        for name, verdict in verdicts:
            print(f"  {name.ljust(width)}  {verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(dump, fh, indent=2)


if __name__ == "__main__":
    main()
