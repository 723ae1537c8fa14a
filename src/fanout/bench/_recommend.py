"""The recommendation: derived from the measured cells, never from the workload's name.

1. The cell with the highest median throughput is the best; every cell within
   noise of it (its fastest run reaches the best's slowest, or its median is
   within a floor of 5%, 15% with fewer than 3 repeats) is a candidate.
2. The simplest candidate wins: sequential, then thread, then async, then
   process (a thread pool works with any sync library, async needs an async
   one, processes need picklable calls and cost an interpreter each), and the
   lowest concurrency of that mode...
3. ...unless the thread and async candidates differ a lot in memory (2x and
   32 MB above their baselines): then the lightest of them wins.

The kind and the one-line reason come from the measured character of the work
when one call runs alone (its CPU share of the wall time, its duration) and
each mode's best speedup over that, classified by ``fanout._classify`` (the
same code and thresholds ``mode="auto"`` uses): "overhead-bound" (tiny calls,
nothing gains), "cpu-bound", "io-bound"; "memory-bound" when no call ran alone
(every mode at one high concurrency: what separates them is memory and start-up).
"""

from __future__ import annotations

from fanout._classify import NO_GAIN, kind_of
from fanout.bench._model import MODES, Cell, Recommendation

MEMORY_RATIO = 2.0
MEMORY_MIN_BYTES = 32 * 1024 * 1024
MODE_LABEL = {
    "sequential": "sequential",
    "thread": "threads",
    "async": "async",
    "process": "processes",
    "dask": "dask",
}


def noise_floor(cell: Cell) -> float:
    """Relative noise assumed even when the repeats agree (few repeats agree by luck)."""
    return 0.05 if len(cell.wall_s) >= 3 else 0.15


def within_noise(best: Cell, other: Cell) -> bool:
    """The runs overlap (other's fastest reaches best's slowest), or the medians are
    closer than the noise floor."""
    if other.throughput.max >= best.throughput.min:
        return True
    return other.throughput.median >= best.throughput.median * (1.0 - noise_floor(best))


def _simplicity(cell: Cell) -> tuple[int, int]:
    return MODES.index(cell.mode), cell.concurrency


def _memory_differs(cells: list[Cell]) -> bool:
    if len({c.mode for c in cells}) < 2:
        return False
    low = min(c.extra_rss_bytes for c in cells)
    high = max(c.extra_rss_bytes for c in cells)
    return high - low >= MEMORY_MIN_BYTES and high >= MEMORY_RATIO * max(low, 1)


def _baseline(cells: list[Cell]) -> Cell | None:
    """One call at a time: the fastest cell at concurrency 1, whatever its mode."""
    alone = [c for c in cells if c.concurrency == 1]
    return max(alone, key=lambda c: c.throughput.median) if alone else None


def _cpu_share(cell: Cell) -> float | None:
    """CPU time over wall time; the highest of the repeats, since other programs on
    the machine can only lengthen the wall time."""
    shares = [cpu / wall for cpu, wall in zip(cell.cpu_s, cell.wall_s, strict=False) if wall > 0]
    return max(shares) if shares else None


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 0.1 else f"{ratio:.2f}x"


def _speedups(cells: list[Cell], baseline: Cell) -> str:
    """'processes 1.9x at 2, threads 1.0x': each mode's best against the baseline
    (one call at a time), fastest first."""
    best_per_mode: dict[str, Cell] = {}
    for cell in cells:
        seen = best_per_mode.get(cell.mode)
        if seen is None or cell.throughput.median > seen.throughput.median:
            best_per_mode[cell.mode] = cell
    base = baseline.throughput.median
    parts = []
    for cell in sorted(best_per_mode.values(), key=lambda c: -c.throughput.median):
        if cell is baseline and cell.mode == "sequential":
            continue
        at = f" at {cell.concurrency}" if cell.concurrency > 1 else ""
        parts.append(f"{MODE_LABEL[cell.mode]} {_times(cell.throughput.median / base)}{at}")
    return ", ".join(parts)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def _memory_reason(cells: list[Cell], failed: list[Cell]) -> str:
    count = max(c.concurrency for c in [*cells, *failed])
    parts = [_memory_parts(cells)] if cells else []
    parts += [f"{MODE_LABEL[c.mode]} failed ({c.error})" for c in failed]
    return f"memory-bound: {count:,} at once: " + "; ".join(parts)


def _memory_parts(cells: list[Cell]) -> str:
    """'async +44 MB, start-up 0.20 s; threads +132 MB (3.0x), start-up 1.51 s'."""
    parts = []
    lightest = min(c.extra_rss_bytes for c in cells) if cells else 0
    for cell in sorted(cells, key=lambda c: c.extra_rss_bytes):
        text = f"{MODE_LABEL[cell.mode]} +{_mib(cell.extra_rss_bytes)}"
        if cell.extra_rss_bytes != lightest and lightest > 0:
            text += f" ({cell.extra_rss_bytes / lightest:.1f}x)"
        if cell.startup is not None:
            text += f", start-up {cell.startup:.2f} s"
            wait = cell.theoretical_min_s
            if wait is not None and cell.startup > wait:
                text += f" (longer than the {wait:g} s wait itself)"
        parts.append(text)
    return "; ".join(parts)


def _in_process(cells: list[Cell]) -> list[Cell]:
    """Thread and async cells: processes always cost an interpreter each, so their
    memory says nothing about the work."""
    return [c for c in cells if c.mode != "process"]


def _kind_and_reason(
    ok: list[Cell], failed: list[Cell], best: Cell, cores: int, gil: bool
) -> tuple[str, str]:
    baseline = _baseline(ok)
    top_level = max(c.concurrency for c in ok)
    at_top = [c for c in ok if c.concurrency == top_level]
    share = _cpu_share(baseline) if baseline else None
    if baseline is None or share is None:
        # no call ran alone, so no speedup: the modes differ in what they cost
        return "memory-bound", _memory_reason(at_top, failed)
    per_call = baseline.wall.median / baseline.items
    speedups = _speedups(ok, baseline)
    best_gain = best.throughput.median / baseline.throughput.median
    kind = kind_of(share, per_call, best_gain=best_gain)
    if kind == "overhead-bound":
        return kind, (
            f"tiny calls ({per_call * 1e6:.0f} µs each): {speedups} — "
            "handing work to workers costs about as much as the work"
        )
    if kind == "cpu-bound":
        threads = [c.throughput.median for c in ok if c.mode == "thread"]
        thread_gain = max(threads) / baseline.throughput.median if threads else None
        why = ""
        if thread_gain is not None and thread_gain < NO_GAIN and gil:
            why = " — the GIL"
        elif thread_gain is not None and thread_gain >= NO_GAIN and not gil:
            why = " — no GIL: threads run in parallel"
        return "cpu-bound", (
            f"CPU-bound (CPU {share:.0%} of the wall time alone, {cores} cores): {speedups}{why}"
        )
    reason = f"I/O-bound (CPU {share:.0%} of the wall time alone): {speedups}"
    if _memory_differs(_in_process(at_top)):
        reason += f"; memory at {top_level:,}: " + _memory_parts(_in_process(at_top))
    return "io-bound", reason


def recommend(cells: list[Cell], *, cores: int, gil: bool) -> Recommendation | None:
    """The mode and concurrency to use for this workload, with a measured reason."""
    ok = [c for c in cells if c.ok and c.failed_items == 0]
    if not ok:
        return None
    failed = [c for c in cells if not c.ok]
    best = max(ok, key=lambda c: c.throughput.median)
    candidates = [c for c in ok if within_noise(best, c)]
    choice = min(candidates, key=_simplicity)
    kind, reason = _kind_and_reason(ok, failed, best, cores, gil)
    light = _in_process(candidates)
    lightest = min(light, key=lambda c: (c.extra_rss_bytes, _simplicity(c))) if light else None
    if lightest is not None and lightest is not choice and _memory_differs(light):
        reason += (
            f"; {MODE_LABEL[lightest.mode]} at {lightest.concurrency:,} is within noise "
            f"of the fastest and uses least memory (+{_mib(lightest.extra_rss_bytes)} "
            f"against +{_mib(choice.extra_rss_bytes)})"
        )
        choice = lightest
    elif choice is not best:
        reason += (
            f"; {MODE_LABEL[choice.mode]} at {choice.concurrency:,} is within noise of the "
            f"fastest ({MODE_LABEL[best.mode]} at {best.concurrency:,}) and simpler"
        )
    others = tuple((c.mode, c.concurrency) for c in candidates if c is not choice)
    return Recommendation(choice.mode, choice.concurrency, kind, reason, others)
