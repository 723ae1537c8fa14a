"""One cell in a process of its own: ``python -m fanout.bench._cell RESULT.json`` < spec.

A fresh process per cell keeps the numbers honest: no threads, arenas or
imports left over from the previous cell inflate its memory or CPU. It writes
one JSON object to RESULT.json (stdout belongs to the function under test):
the repeats' wall and CPU times, the peak RSS of the process tree, threads
and processes, failed items, and any error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fanout.bench._measure import current_rss, measure, settle, tree_counts
from fanout.bench._workloads import RunOutcome, describe_error, workload_for

#: a cell whose runs are this short gets more repeats, up to this much measured time
MIN_MEASURED_S = 0.3
MIN_MEASURED_QUICK_S = 0.1
MAX_REPEATS = 30
#: no further repeats once a cell has measured this long (a pathological run stays one)
MAX_MEASURED_S = 60.0
MAX_MEASURED_QUICK_S = 20.0


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm up once on a few items, then run the cell ``repeats`` times (more when its
    runs are too short to time well), each from the same settled state."""
    params: dict[str, Any] = spec["params"]
    workload = workload_for(spec["workload"], params)
    mode: str = spec["mode"]
    concurrency: int = spec["concurrency"]
    n: int = spec["items"]
    out: dict[str, Any] = {
        "wall_s": [],
        "cpu_s": [],
        "startup_s": [],
        "others_share": [],
        "peak_rss_bytes": 0,
        "baseline_rss_bytes": current_rss(),
        "threads": 0,
        "processes": 0,
        "failed_items": 0,
        "first_failure": None,
        "budget_note": None,
        "error": None,
    }
    try:
        items = workload.items(n, params)
        at_start = tree_counts()
        if spec.get("warmup", True):
            warm = workload.warmup_items(n, params)
            workload.run(mode, min(concurrency, len(warm)), warm, params)
        # threads and worker processes a run leaves exiting must be gone before the
        # next run starts, or it pays for the previous run's teardown
        rest = settle(at_start)
        quick = bool(spec.get("quick"))
        enough = MIN_MEASURED_QUICK_S if quick else MIN_MEASURED_S
        budget = MAX_MEASURED_QUICK_S if quick else MAX_MEASURED_S
        while len(out["wall_s"]) < spec["repeats"] or (
            sum(out["wall_s"]) < enough and len(out["wall_s"]) < MAX_REPEATS
        ):
            if sum(out["wall_s"]) >= budget:
                out["budget_note"] = (
                    f"{len(out['wall_s'])} of {spec['repeats']} runs: "
                    f"the cell used up its {budget:g} s budget"
                )
                break
            settle(rest)
            outcome: RunOutcome
            outcome, usage = measure(
                lambda: workload.run(mode, concurrency, items, params),
                helpers=params.get("helper_pids", []),
            )
            out["wall_s"].append(usage.wall_s)
            if usage.others_share is not None:
                out["others_share"].append(usage.others_share)
            out["cpu_s"].append(usage.cpu_s)
            out["peak_rss_bytes"] = max(out["peak_rss_bytes"], usage.peak_rss_bytes)
            out["threads"] = max(out["threads"], usage.threads)
            out["processes"] = max(out["processes"], usage.processes)
            if outcome.startup_s is not None:
                out["startup_s"].append(outcome.startup_s)
            if outcome.failed > out["failed_items"]:
                out["failed_items"] = outcome.failed
                out["first_failure"] = outcome.first_error
    except Exception as exc:
        out["error"] = describe_error(exc)
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    result = run_cell(spec)
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
