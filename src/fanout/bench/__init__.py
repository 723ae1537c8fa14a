"""``fanout bench``: the concurrency models measured side by side.

Map of the package:
    _runner.py     plans each workload's cells and runs each in a fresh process (_cell.py)
    _workloads.py  the built-in workloads (http, sleep, cpu, files, memory) and the user's function
    _measure.py    what one run costs: wall, CPU, peak RSS, threads, processes, others' CPU use
    _recommend.py  the recommendation, derived from the measured cells
    _report.py     the rich table and the JSON (schema: docs/bench-schema.md)
    _plot.py       the PNG; matplotlib is imported only here

The ``fanout bench`` command itself is ``fanout.cli._bench``.
"""
