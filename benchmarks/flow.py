"""Flow control against a server that pushes back: one table of ratios, measured in one run.

Each scenario runs against the mock server in a process of its own
(``MockServer.spawn``), and each client in a fresh process: ``fanout http`` for
most, a ``fanout.amap`` client (``--child``) where per-second throughput is
needed. Every figure is a ratio against something measured in the same run (or
the server's own limit), the median of ``--repeat`` runs with its min-max:

throttle   2,000 POSTs, ``-c 64 --retries 8 --rate 400/s --timeout 10``, against 15% 429s
           (Retry-After 1 s) whatever the load + 5% 500 + 3% 503 + 2% resets, at most 3
           faults per request: throughput against the same run without the 429s; every
           request must succeed exactly once.
unknown    the server takes 100 requests/s (a 1 s sliding window, no headers), no --rate,
           ``-c 64``: throughput against the limit, 429s per request.
schedule   the same limit, halved at 10 s and restored at 20 s (``fanout.amap`` client):
           seconds until our start rate follows it down, and our throughput up.
tokens     1,000 chat requests against RPM 3,000 and TPM 150,000 buckets (1 s deep; tokens
           bind): wall time against the theoretical minimum, with ``--tpm 150000`` and with
           nothing given (the server's headers only); 429s per request.
auto       a server that works on 20 requests at once and queues the rest: ``-c auto``
           against the best of ``-c 10, 20, 30, 64``; median latency against the unloaded one.

    python benchmarks/flow.py                 # 3 runs of everything, ~12 minutes on 2 cores
    python benchmarks/flow.py --quick         # 1 run, smaller sizes
    python benchmarks/flow.py --only tokens --repeat 5
"""

from __future__ import annotations

import os
import sys

# this folder holds http.py, which would shadow the standard library's http package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from fanout.http._tokens import estimate_tokens  # noqa: E402
from fanout.mock import MockServer, reset_stats  # noqa: E402

LATENCY = 0.05
SCENARIOS = ("throttle", "unknown", "schedule", "tokens", "auto")


# ------------------------------------------------------------------ helpers
def write_requests(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def fanout_http(requests: Path, tmp: Path, *args: str) -> dict[str, Any]:
    """Run ``fanout http`` in a fresh process; its --summary-json document."""
    out, summary = tmp / "out.jsonl", tmp / "summary.json"
    for stale in (out, summary):
        stale.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "fanout", "http", str(requests), "-o", str(out),
         "--summary-json", str(summary), "--no-progress", *args],
        capture_output=True, text=True, timeout=900,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"fanout http exited {proc.returncode}: {proc.stderr[-500:]}")
    document: dict[str, Any] = json.loads(summary.read_text())
    document["records"] = [json.loads(line) for line in out.read_text().splitlines()]
    return document


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


class Figure:
    """One figure of the table: its runs, and the target it is held to."""

    def __init__(self, scenario: str, name: str, target: str,
                 met: Callable[[float], bool], unit: str = "x") -> None:
        self.scenario, self.name, self.target, self.met, self.unit = (
            scenario, name, target, met, unit)
        self.values: list[float] = []

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def row(self) -> str:
        values = self.values
        spread = f"{min(values):.3f}-{max(values):.3f}" if len(values) > 1 else ""
        verdict = "met" if self.met(self.median) else "NOT MET"
        return (f"{self.scenario:<9} {self.name:<46} {self.median:>7.3f}{self.unit:<2} "
                f"{spread:>13}  {self.target:<10} {verdict}")


# ------------------------------------------------------------------ scenarios
def throttle(tmp: Path, n: int, figures: dict[str, Figure]) -> str:
    faults = {"error_rate": 0.05, "unavailable_rate": 0.03, "reset_rate": 0.02,
              "max_faults": 3, "seed": 1, "latency": LATENCY}
    throughput = {}
    exactly_once = True
    for share in (0.15, 0.0):
        with MockServer.spawn(throttle_rate=share, **faults) as server:
            requests = write_requests(tmp / "throttle.jsonl", [
                {"id": f"t{i}", "method": "POST", "url": f"{server.url}/echo",
                 "headers": {"X-Request-Id": f"t{i}"}, "json": {"n": i}} for i in range(n)])
            doc = fanout_http(requests, tmp, "-c", "64", "--retries", "8", "--rate", "400/s",
                              "--timeout", "10")
            stats = server.stats()
        throughput[share] = doc["throughput"]
        ok = stats["by_id_ok"]
        exactly_once &= (doc["ok"] == n and len(ok) == n and set(ok.values()) == {1})
    figures["ratio"].values.append(throughput[0.15] / throughput[0.0])
    figures["once"].values.append(1.0 if exactly_once else 0.0)
    return f"{throughput[0.15]:.1f}/s with the 429s, {throughput[0.0]:.1f}/s without"


def unknown(tmp: Path, n: int, figures: dict[str, Figure]) -> str:
    with MockServer.spawn(rate_limit="100/s", latency=LATENCY) as server:
        requests = write_requests(tmp / "unknown.jsonl", [
            {"id": f"u{i}", "url": f"{server.url}/todos/{i % 200 + 1}",
             "headers": {"X-Request-Id": f"u{i}"}} for i in range(n)])
        doc = fanout_http(requests, tmp, "-c", "64", "--retries", "8", "--timeout", "10")
        stats = server.stats()
    figures["throughput"].values.append(doc["ok"] / doc["wall_time"] / 100.0)
    figures["429s"].values.append(stats["rate_limited"] / n)
    return f"{doc['ok'] / doc['wall_time']:.1f}/s, {stats['rate_limited']} 429s"


def schedule(tmp: Path, n: int, figures: dict[str, Figure]) -> str:
    with MockServer.spawn(rate_limit="100/s", latency=LATENCY,
                          limit_schedule=[(10.0, 0.5), (20.0, 1.0)]) as server:
        reset_stats(server.url)  # the schedule's clock starts now
        began = time.monotonic()
        proc = subprocess.run([sys.executable, __file__, "--child", server.url, str(n),
                               str(began)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"client failed: {proc.stderr[-500:]}")
        done = json.loads(proc.stdout)
        stats = server.stats()
    attempts = {int(k): v for k, v in stats["per_second"].items()}
    ok = [0] * (int(max(done, default=0)) + 2)
    for t in done:
        ok[int(t)] += 1
    # down: from when on our starts stay within 20% of the halved limit (until 20 s)
    down = next((s for s in range(10, 20)
                 if all(attempts.get(x, 0) <= 60 for x in range(s, 20))), 20)
    # up: the first second after 20 s with 90% of the restored limit done
    up = next((s for s in range(20, len(ok)) if ok[s] >= 90), len(ok))
    figures["down"].values.append(down + 1 - 10.0)
    figures["up"].values.append(up + 1 - 20.0)
    return f"done per second: {ok[:32]}"


def tokens(tmp: Path, n: int, figures: dict[str, Figure]) -> str:
    rpm, tpm, bucket = 3000, 150_000, 1.0
    said = []
    for given, args in (("budget", ("--tpm", str(tpm))), ("nothing", ())):
        with MockServer.spawn(rpm=rpm, tpm=tpm, bucket=bucket, latency=LATENCY) as server:
            lines, total = [], 0
            for i in range(n):
                body = {"model": "mock-1", "max_tokens": 145, "messages": [
                    {"role": "user", "content": f"What is {i}+{i + 1}+3=___ ?"}]}
                total += estimate_tokens(body)
                lines.append({"id": f"k{i}", "method": "POST",
                              "url": f"{server.url}/v1/chat/completions",
                              "headers": {"X-Request-Id": f"k{i}"}, "json": body})
            requests = write_requests(tmp / "tokens.jsonl", lines)
            doc = fanout_http(requests, tmp, "-c", "64", "--retries", "8", "--timeout", "30",
                              *args)
            stats = server.stats()
        # the buckets start full: the rest flows in at the limit; then one answer's latency
        minimum = max((total - tpm * bucket / 60) / (tpm / 60),
                      (n - max(rpm * bucket / 60, 1)) / (rpm / 60), 0.0) + LATENCY
        figures[f"{given} time"].values.append(doc["wall_time"] / minimum)
        figures[f"{given} 429s"].values.append(stats["rate_limited"] / n)
        said.append(f"{given}: {doc['wall_time']:.2f}s (minimum {minimum:.2f}s), "
                    f"{stats['rate_limited']} 429s")
    return "; ".join(said)


def auto(tmp: Path, n: int, figures: dict[str, Figure]) -> str:
    with MockServer.spawn(capacity=20, latency=LATENCY) as server:
        requests = write_requests(tmp / "auto.jsonl", [
            {"id": f"a{i}", "url": f"{server.url}/todos/{i % 200 + 1}"} for i in range(n)])
        best = 0.0
        for c in ("10", "20", "30", "64"):
            best = max(best, fanout_http(requests, tmp, "-c", c, "--timeout", "30")["throughput"])
        doc = fanout_http(requests, tmp, "-c", "auto", "--timeout", "30")
        one = write_requests(tmp / "one.jsonl", [
            {"id": f"o{i}", "url": f"{server.url}/todos/{i + 1}"} for i in range(50)])
        unloaded = fanout_http(one, tmp, "-c", "1", "--timeout", "30")["latency_ms"]["p50"]
    figures["throughput"].values.append(doc["throughput"] / best)
    figures["latency"].values.append(doc["latency_ms"]["p50"] / unloaded)
    return (f"auto {doc['throughput']:.0f}/s at p50 {doc['latency_ms']['p50']:.1f} ms, "
            f"best fixed {best:.0f}/s, unloaded p50 {unloaded:.1f} ms")


# ------------------------------------------------------------------ the child client
def child(url: str, n: int, began: float) -> None:
    """A ``fanout.amap`` client of the schedule scenario: prints when each request
    succeeded, in seconds since ``began`` (the server's schedule clock)."""
    import aiohttp

    import fanout

    class Refused(Exception):
        def __init__(self, status: int, retry_after: float | None) -> None:
            super().__init__(f"HTTP {status}")
            self.status = status
            self.retry_after = retry_after

    done: list[float] = []

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async def fetch(i: int) -> None:
                async with session.get(f"{url}/todos/{i % 200 + 1}") as response:
                    await response.read()
                    if response.status != 200:
                        after = response.headers.get("Retry-After")
                        raise Refused(response.status, float(after) if after else None)
                done.append(round(time.monotonic() - began, 4))

            await fanout.amap(fetch, range(n), concurrency=64, retries=8)

    asyncio.run(main())
    print(json.dumps(done))


# ------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=None, help="runs per scenario (3)")
    parser.add_argument("--quick", action="store_true", help="1 run, smaller sizes")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="repeatable")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), float(args.child[2]))
        return
    repeat = args.repeat or (1 if args.quick else 3)
    scale = 0.5 if args.quick else 1.0
    at_most = lambda bound: lambda v: v <= bound  # noqa: E731
    at_least = lambda bound: lambda v: v >= bound  # noqa: E731
    plan: list[tuple[str, Callable[[Path, int, dict[str, Figure]], str], int,
                     dict[str, Figure]]] = [
        ("throttle", throttle, 2000, {
            "ratio": Figure("throttle", "throughput / same run without 429s", ">= 0.5",
                            at_least(0.5)),
            "once": Figure("throttle", "every request succeeded exactly once (1 = yes)",
                           "= 1", at_least(1.0)),
        }),
        ("unknown", unknown, 2000, {
            "throughput": Figure("unknown", "throughput / the server's 100/s", ">= 0.9",
                                 at_least(0.9)),
            "429s": Figure("unknown", "429s / requests", "<= 0.05", at_most(0.05)),
        }),
        ("schedule", schedule, 2500, {
            "down": Figure("schedule", "seconds to follow the limit down (100 -> 50/s)",
                           "<= 5 s", at_most(5.0), " s"),
            "up": Figure("schedule", "seconds to follow it up (50 -> 100/s)", "<= 5 s",
                         at_most(5.0), " s"),
        }),
        ("tokens", tokens, 1000, {
            "budget time": Figure("tokens", "--tpm given: wall / theoretical minimum",
                                  "<= 1.03", at_most(1.03)),
            "budget 429s": Figure("tokens", "--tpm given: 429s / requests", "<= 0.01",
                                  at_most(0.01)),
            "nothing time": Figure("tokens", "nothing given: wall / theoretical minimum",
                                   "<= 1.05", at_most(1.05)),
            "nothing 429s": Figure("tokens", "nothing given: 429s / requests", "(none)",
                                   lambda v: True),
        }),
        ("auto", auto, 2000, {
            "throughput": Figure("auto", "-c auto throughput / best fixed -c", ">= 0.9",
                                 at_least(0.9)),
            "latency": Figure("auto", "-c auto median latency / unloaded", "<= 1.5",
                              at_most(1.5)),
        }),
    ]
    started = time.perf_counter()
    print(f"flow control benchmark: {repeat} run(s) per scenario, {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fanout-flow-") as folder:
        tmp = Path(folder)
        for name, scenario, n, figures in plan:
            if args.only and name not in args.only:
                continue
            if name != "schedule":  # that one lasts as long as its schedule
                n = max(200, int(n * scale))
            for run in range(repeat):
                t0 = time.perf_counter()
                said = scenario(tmp, n, figures)
                print(f"  {name} run {run + 1}: {time.perf_counter() - t0:.1f}s, {load()}: "
                      f"{said}", flush=True)
    print()
    print(f"{'scenario':<9} {'figure':<46} {'median':>9} {'min-max':>13}  {'target':<10}")
    rows: list[dict[str, Any]] = []
    for name, _, _, figures in plan:
        for figure in figures.values():
            if figure.values:
                print(figure.row())
                rows.append({"scenario": name, "figure": figure.name, "values": figure.values,
                             "median": figure.median, "target": figure.target,
                             "met": figure.met(figure.median)})
    print(f"\ntotal {time.perf_counter() - started:.0f} s, {load()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
