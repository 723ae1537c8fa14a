"""The data a bench run produces: plain dataclasses that turn into the JSON schema.

See docs/bench-schema.md; ``SCHEMA`` names its version.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "fanout-bench/1"

#: simplest first; a tie within noise goes to the earlier mode (dask, a cluster, last)
MODES = ("sequential", "thread", "async", "process", "dask")
#: what `fanout bench` measures unless --modes says otherwise (dask starts a cluster)
DEFAULT_MODES = ("sequential", "thread", "async", "process")


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements, with their minimum and maximum."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class Cell:
    """One mode at one concurrency on one workload: repeated runs, summarised."""

    mode: str
    concurrency: int
    items: int
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    peak_rss_bytes: int = 0
    baseline_rss_bytes: int = 0
    threads: int = 0
    processes: int = 0
    failed_items: int = 0
    startup_s: list[float] = field(default_factory=list)
    #: per run, the share of the machine's CPUs other programs used meanwhile
    others_share: list[float] = field(default_factory=list)
    theoretical_min_s: float | None = None
    error: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.wall_s)

    @property
    def wall(self) -> Spread:
        return Spread.of(self.wall_s)

    @property
    def throughput(self) -> Spread:
        """Items per second; its min comes from the slowest run."""
        rates = [self.items / w if w > 0 else float("inf") for w in self.wall_s]
        return Spread.of(rates)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_s) if self.cpu_s else 0.0

    @property
    def others(self) -> float | None:
        return statistics.median(self.others_share) if self.others_share else None

    @property
    def startup(self) -> float | None:
        return statistics.median(self.startup_s) if self.startup_s else None

    @property
    def ratio_to_min(self) -> float | None:
        """Median wall time over the theoretical minimum (1.0 is perfect)."""
        if self.theoretical_min_s is None or not self.ok or self.theoretical_min_s <= 0:
            return None
        return self.wall.median / self.theoretical_min_s

    @property
    def extra_rss_bytes(self) -> int:
        return max(0, self.peak_rss_bytes - self.baseline_rss_bytes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "items": self.items,
            "status": "ok" if self.ok else "failed",
            "error": self.error,
            "note": self.note,
            "wall_s": None,
            "throughput": None,
            "theoretical_min_s": self.theoretical_min_s,
            "ratio_to_min": self.ratio_to_min,
            "cpu_s": self.cpu if self.cpu_s else None,
            "peak_rss_bytes": self.peak_rss_bytes or None,
            "baseline_rss_bytes": self.baseline_rss_bytes or None,
            "threads": self.threads,
            "processes": self.processes,
            "failed_items": self.failed_items,
            "startup_s": self.startup,
            "others_cpu_share": self.others,
        }
        if self.wall_s:
            out["wall_s"] = {**asdict(self.wall), "runs": list(self.wall_s)}
            out["throughput"] = asdict(self.throughput)
        return out


@dataclass(frozen=True)
class Skipped:
    """A cell not run, and why."""

    mode: str
    concurrency: int | None
    reason: str


@dataclass(frozen=True)
class Recommendation:
    """The mode and concurrency to use, and the measured reason."""

    mode: str
    concurrency: int
    kind: str  # "cpu-bound" | "io-bound" | "memory-bound" | "overhead-bound"
    reason: str
    within_noise: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "kind": self.kind,
            "reason": self.reason,
            "within_noise": [{"mode": m, "concurrency": c} for m, c in self.within_noise],
        }


@dataclass
class WorkloadReport:
    """All cells of one workload (a built-in, or the user's function)."""

    name: str
    description: str
    theoretical_min: str | None
    cells: list[Cell] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recommendation: Recommendation | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "theoretical_min": self.theoretical_min,
            "error": self.error,
            "cells": [c.to_json() for c in self.cells],
            "skipped": [asdict(s) for s in self.skipped],
            "notes": list(self.notes),
            "recommendation": self.recommendation.to_json() if self.recommendation else None,
        }


@dataclass
class BenchReport:
    """A whole run: the machine, the settings and every workload."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    workloads: list[WorkloadReport] = field(default_factory=list)
    total_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        from fanout.bench._measure import fanout_version

        return {
            "schema": SCHEMA,
            "fanout_version": fanout_version(),
            "machine": self.machine,
            "settings": self.settings,
            "total_s": self.total_s,
            "workloads": [w.to_json() for w in self.workloads],
        }
