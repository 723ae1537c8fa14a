"""``--plot FILE.png``: throughput against concurrency, one line per mode, one panel per workload.

Imported only when a plot is asked for: matplotlib is heavy, and the Agg
backend needs no display.
"""

from __future__ import annotations

import math

from fanout.bench._model import MODES, BenchReport

COLORS = {"sequential": "#555555", "thread": "#1f77b4", "async": "#2ca02c", "process": "#d62728",
          "dask": "#9467bd"}
MARKERS = {"sequential": "s", "thread": "o", "async": "^", "process": "D", "dask": "P"}


def write_plot(report: BenchReport, path: str) -> None:
    """Draw the report into a PNG file at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    workloads = [w for w in report.workloads if any(c.ok for c in w.cells)]
    count = max(1, len(workloads))
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for index, workload in enumerate(workloads):
        ax = axes[index // cols][index % cols]
        for mode in MODES:
            cells = sorted(
                (c for c in workload.cells if c.ok and c.mode == mode), key=lambda c: c.concurrency
            )
            if not cells:
                continue
            xs = [c.concurrency for c in cells]
            ys = [c.throughput.median for c in cells]
            low = [c.throughput.median - c.throughput.min for c in cells]
            high = [c.throughput.max - c.throughput.median for c in cells]
            ax.errorbar(
                xs,
                ys,
                yerr=[low, high],
                label=mode,
                color=COLORS[mode],
                marker=MARKERS[mode],
                capsize=3,
            )
        rec = workload.recommendation
        if rec is not None:
            chosen = next(
                c for c in workload.cells if (c.mode, c.concurrency) == (rec.mode, rec.concurrency)
            )
            ax.scatter(
                [chosen.concurrency],
                [chosen.throughput.median],
                s=220,
                facecolors="none",
                edgecolors="black",
                zorder=5,
                label=f"recommended: {rec.mode} at {rec.concurrency:,}",
            )
        ok = [c for c in workload.cells if c.ok]
        levels = sorted({c.concurrency for c in ok})
        rates = [c.throughput.median for c in ok]
        ax.set_xscale("log")
        ax.set_xticks(levels)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        # a log y-axis only when the rates span orders of magnitude
        wide = max(rates) > 20 * min(rates)
        if wide:
            ax.set_yscale("log")
        ax.set_title(workload.name)
        ax.set_xlabel("concurrency (log)")
        ax.set_ylabel("items/s (log)" if wide else "items/s")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    for index in range(len(workloads), rows * cols):
        axes[index // cols][index % cols].set_visible(False)
    machine = report.machine
    fig.suptitle(
        f"fanout bench — {machine['cores']} cores, {machine['implementation']} "
        f"{machine['python']}, GIL {'on' if machine['gil'] else 'off'}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
