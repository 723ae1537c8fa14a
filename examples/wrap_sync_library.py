"""Call a blocking (sync) library from async code without freezing the event loop.

    python examples/wrap_sync_library.py [--url BASE] [--count 40]

``fanout.amap(fn, items, mode="thread")`` runs the blocking calls in a thread
pool while the loop stays free: the heartbeat below keeps ticking. Calling the
blocking function directly inside a coroutine would stop it for the whole batch.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import sys
import time
from urllib.parse import urlsplit

import fanout
from fanout.mock import api


class LegacyClient:
    """Stands in for any sync SDK: blocking calls, one connection per call."""

    def __init__(self, base_url: str) -> None:
        self.netloc = urlsplit(base_url).netloc

    def get_todo(self, todo_id: int) -> dict[str, object]:
        conn = http.client.HTTPConnection(self.netloc, timeout=10)
        try:
            conn.request("GET", f"/todos/{todo_id}")
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} for todo {todo_id}")
            todo: dict[str, object] = json.loads(response.read())
            return todo
        finally:
            conn.close()


async def heartbeat(ticks: list[float], every: float = 0.02) -> None:
    while True:
        ticks.append(time.perf_counter())
        await asyncio.sleep(every)


async def run(base: str, count: int) -> tuple[list[fanout.Result[dict[str, object]]], float]:
    client = LegacyClient(base)
    ticks: list[float] = []
    beat = asyncio.create_task(heartbeat(ticks))
    results = await fanout.amap(client.get_todo, range(1, count + 1), mode="thread", concurrency=10)
    beat.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return results, max(gaps, default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FANOUT_URL"), help="API base URL")
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()

    with api(args.url, latency=0.05) as base:
        start = time.perf_counter()
        results, worst_gap = asyncio.run(run(base, args.count))
        elapsed = time.perf_counter() - start

    ok = sum(1 for r in results if r.ok)
    print(
        f"{ok}/{len(results)} todos from a sync client in {elapsed:.2f} s; "
        f"the event loop's longest pause: {worst_gap * 1000:.0f} ms"
    )
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
