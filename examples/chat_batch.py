"""Send a batch of prompts to an OpenAI-style chat API: async, rate-limited, retried.

    python examples/chat_batch.py                       # starts a local mock API itself
    python examples/chat_batch.py --url http://127.0.0.1:8080 --count 100 --rate 50/s

A 429 answer tells fanout to slow everyone down (``throttle``) and for how long
(``retry_after``): the batch adapts instead of hammering the API.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import aiohttp

import fanout
from fanout.mock import api


class APIError(Exception):
    """An error answer; the attributes are the protocol fanout's retries understand."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.retry_after = retry_after
        self.throttle = status == 429
        self.retryable = status == 429 or status >= 500


async def ask(session: aiohttp.ClientSession, url: str, question: str) -> str:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": question}]}
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        if response.status != 200:
            after = response.headers.get("Retry-After")
            raise APIError(response.status, float(after) if after else None)
        reply: dict[str, Any] = await response.json()
        answer: str = reply["choices"][0]["message"]["content"]
        return answer


async def run(url: str, count: int, rate: str) -> list[fanout.Result[str]]:
    questions = [f"What is {i}+{i * 2}=___ ?" for i in range(count)]
    async with aiohttp.ClientSession() as session:

        async def one(question: str) -> str:
            return await ask(session, url, question)

        return await fanout.amap(one, questions, concurrency=20, rate=rate, retries=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("FANOUT_URL"), help="API base URL")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--rate", default="50/s", help="our own pace, e.g. 50/s or 600/min")
    args = parser.parse_args()

    with api(args.url, latency=0.05, jitter=0.02, rate_limit="40/s", seed=1) as base:
        start = time.perf_counter()
        results = asyncio.run(run(base, args.count, args.rate))
        elapsed = time.perf_counter() - start

    wrong = [r for r in results if not r.ok or r.value != str(3 * r.index)]
    retried = sum(r.attempts - 1 for r in results)
    print(f"{len(results)} answers in {elapsed:.2f} s, {retried} retries, {len(wrong)} wrong")
    for r in wrong:
        print(f"  {r.item!r}: {r.value if r.ok else repr(r.error)}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
