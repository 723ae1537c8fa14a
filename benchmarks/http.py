"""``fanout http`` against the usual ways of sending a batch of requests, in one run.

5,000 GETs at concurrency 100 to the mock server (its own process), on a fast
endpoint (0 ms latency) and a 50 ms one. Each client runs in a fresh process of
its own, so its CPU time (user + system, all threads) is measured cleanly:

- fanout http: the real command, reading a JSONL file, validating it, writing
  the ordered journal to a temporary file, retries on, the progress bar forced
  on (drawn to /dev/null);
- bare aiohttp + asyncio.Semaphore + gather (the hand-written baseline), on
  uvloop like fanout, and on the default asyncio loop;
- httpx.AsyncClient + Semaphore;
- requests + ThreadPoolExecutor(100), a Session per thread.

Every client parses each JSON body. Prints requests/s, client CPU seconds per
1,000 requests, and (50 ms) the wall time over the ideal 5000/100*0.05 = 2.5 s.

    python benchmarks/http.py [--requests 5000] [--concurrency 100] [--repeat 1]
"""

from __future__ import annotations

import os
import sys

# This file is named http.py: run as a script, its folder would shadow the stdlib package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

CLIENTS = ["fanout", "aiohttp", "aiohttp-asyncio", "httpx", "requests"]
LABELS = {
    "fanout": "fanout http (journal, order, retries, progress)",
    "aiohttp": "aiohttp + Semaphore (uvloop)",
    "aiohttp-asyncio": "aiohttp + Semaphore (asyncio loop)",
    "httpx": "httpx.AsyncClient + Semaphore",
    "requests": "requests + ThreadPoolExecutor(100)",
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _urls(base: str, n: int) -> list[str]:
    return [f"{base}/todos/{i % 200 + 1}" for i in range(n)]


# ------------------------------------------------------------------ the clients
def prepare_fanout(base: str, n: int, tmp: str) -> str:
    """The input file (written before the clock starts, like the others' URL lists)."""
    req = os.path.join(tmp, "requests.jsonl")
    with open(req, "w") as fh:
        for i, url in enumerate(_urls(base, n)):
            fh.write(json.dumps({"id": f"r{i}", "url": url}) + "\n")
    return req


def run_fanout(req: str, concurrency: int, tmp: str) -> str:
    from fanout.cli._http import http_command

    out = os.path.join(tmp, "results.jsonl")
    args = [req, "-o", out, "-c", str(concurrency), "--retries", "3", "--progress"]
    try:
        http_command.main(args, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    return out


def count_ok(out: str) -> int:
    with open(out, "rb") as fh:
        return sum(1 for line in fh if b'"ok": true' in line)


def run_aiohttp(base: str, n: int, concurrency: int, use_uvloop: bool) -> int:
    import asyncio

    import aiohttp

    async def main() -> int:
        sem = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(url: str) -> Any:
                async with sem, session.get(url) as resp:
                    return resp.status, await resp.json()

            results = await asyncio.gather(*(one(u) for u in _urls(base, n)))
        return sum(1 for status, _ in results if status == 200)

    if use_uvloop:
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def run_httpx(base: str, n: int, concurrency: int) -> int:
    import asyncio

    import httpx
    import uvloop

    async def main() -> int:
        sem = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def one(url: str) -> Any:
                async with sem:
                    resp = await client.get(url)
                    return resp.status_code, resp.json()

            results = await asyncio.gather(*(one(u) for u in _urls(base, n)))
        return sum(1 for status, _ in results if status == 200)

    return uvloop.run(main())


def run_requests(base: str, n: int, concurrency: int) -> int:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()

    def one(url: str) -> Any:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        resp = session.get(url, timeout=60)
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, _urls(base, n)))
    return sum(1 for status, _ in results if status == 200)


def child(client: str, base: str, n: int, concurrency: int) -> None:
    """Run one client once, print {"wall", "cpu", "ok"} as JSON on stdout."""
    import importlib

    # import the client's libraries before the clock starts: startup is not the subject
    for module in {"fanout": ["fanout.cli._http", "aiohttp", "uvloop", "rich.progress"],
                   "aiohttp": ["aiohttp", "uvloop"], "aiohttp-asyncio": ["aiohttp"],
                   "httpx": ["httpx", "uvloop"], "requests": ["requests"]}[client]:
        importlib.import_module(module)
    tmp = tempfile.mkdtemp(prefix="fanout-bench-")
    req = prepare_fanout(base, n, tmp) if client == "fanout" else ""
    cpu0, wall0 = _cpu(), time.perf_counter()
    if client == "fanout":
        out = run_fanout(req, concurrency, tmp)
    elif client == "aiohttp":
        ok = run_aiohttp(base, n, concurrency, use_uvloop=True)
    elif client == "aiohttp-asyncio":
        ok = run_aiohttp(base, n, concurrency, use_uvloop=False)
    elif client == "httpx":
        ok = run_httpx(base, n, concurrency)
    else:
        ok = run_requests(base, n, concurrency)
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    if client == "fanout":
        ok = count_ok(out)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"wall": wall, "cpu": cpu, "ok": ok}), flush=True)


# ------------------------------------------------------------------- the driver
def measure(client: str, base: str, n: int, concurrency: int) -> dict[str, float]:
    with open(os.devnull, "w") as devnull:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", client, "--url", base,
             "--requests", str(n), "--concurrency", str(concurrency)],
            stdout=subprocess.PIPE, stderr=devnull, text=True, check=True, timeout=600,
        )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["ok"] != n:
        raise RuntimeError(f"{client}: only {result['ok']} of {n} requests succeeded")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per cell; the fastest is kept")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.requests, args.concurrency)
        return

    from fanout.mock import MockServer

    n, c = args.requests, args.concurrency
    clients = args.clients.split(",")
    ideal = n / c * 0.05
    print(f"{n} GET requests at concurrency {c}; mock server in its own process; "
          f"each client in a fresh process (best of {args.repeat} for time and CPU)\n")
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for label, latency in (("0 ms", 0.0), ("50 ms", 0.05)):
        with MockServer.spawn(latency=latency) as server:
            for client in clients:
                runs = [measure(client, server.url, n, c) for _ in range(args.repeat)]
                # the best of each measure: other load on the machine only adds to both
                rows[(label, client)] = {"wall": min(r["wall"] for r in runs),
                                         "cpu": min(r["cpu"] for r in runs)}
    header = (f"{'endpoint':<8} {'client':<50} {'req/s':>8} {'CPU s/1k':>9} "
              f"{'vs aiohttp req/s':>17} {'vs aiohttp CPU':>15} {'x ideal':>8}")
    print(header)
    print("-" * len(header))
    for (label, client), r in rows.items():
        base = rows.get((label, "aiohttp"))
        rps = n / r["wall"]
        cpu_k = r["cpu"] / n * 1000
        vs_rps = f"{rps / (n / base['wall']):.2f}x" if base else "-"
        vs_cpu = f"{cpu_k / (base['cpu'] / n * 1000):.2f}x" if base else "-"
        x_ideal = f"{r['wall'] / ideal:.2f}x" if label == "50 ms" else ""
        print(f"{label:<8} {LABELS[client]:<50} {rps:>8,.0f} {cpu_k:>9.3f} "
              f"{vs_rps:>17} {vs_cpu:>15} {x_ideal:>8}")
    print(f"\nideal time for the 50 ms endpoint: {n}/{c} x 0.05 s = {ideal:.2f} s")


if __name__ == "__main__":
    main()
