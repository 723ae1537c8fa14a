"""Fetch 200 JSON todos over HTTP with a thread pool, politely.

    python examples/fetch_todos.py                 # starts a local mock API itself
    python examples/fetch_todos.py --url http://127.0.0.1:8080 --count 50

Any blocking HTTP client works in thread mode; this one is the stdlib's.
Results come back in input order, one per item, failures included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request

import fanout
from fanout.mock import api


def get_todo(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        todo: dict[str, object] = json.load(response)
        return todo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FANOUT_URL"), help="API base URL")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    with api(args.url, latency=0.05) as base:
        urls = [f"{base}/todos/{i}" for i in range(1, args.count + 1)]
        start = time.perf_counter()
        results = fanout.map(
            get_todo, urls, mode="thread", concurrency=args.concurrency, rate="500/s", retries=3
        )
        elapsed = time.perf_counter() - start

    failed = [r for r in results if not r.ok]
    done = sum(1 for r in results if r.ok and r.unwrap()["completed"])
    print(f"fetched {len(results) - len(failed)} todos in {elapsed:.2f} s; {done} completed")
    for r in failed:
        print(f"  {r.item}: {r.error!r}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
