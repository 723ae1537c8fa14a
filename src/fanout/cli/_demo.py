"""``fanout demo``: the same batch of chat questions sent three ways to a local mock LLM API.

Offline: the mock server runs in this process, in a background thread. Each question waits
on the server's latency, not on this process's CPU, so sharing the process (and the GIL) with
the clients costs the three ways next to nothing and keeps the demo self-contained; the
benchmarks (``benchmarks/http.py``) run the server in its own process instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import click

from fanout.cli._mock_server import duration_option

_MODEL = "mock-arithmetic-1"


@dataclass(frozen=True)
class _Question:
    text: str
    answer: str


@dataclass(frozen=True)
class _Outcome:
    way: str
    seconds: float
    answers: list[str | None]
    first_error: str | None


def _questions(count: int, seed: int) -> list[_Question]:
    rng = random.Random(seed)
    questions = []
    for _ in range(count):
        a, b, c = (rng.randint(1, 99) for _ in range(3))
        questions.append(_Question(f"What is {a}+{b}+{c}=___ ?", str(a + b + c)))
    return questions


def _body(question: _Question) -> dict[str, Any]:
    return {"model": _MODEL, "messages": [{"role": "user", "content": question.text}]}


def _content(payload: Any) -> str:
    content: str = payload["choices"][0]["message"]["content"]
    return content.strip()


def _blocking_ask(session: Any, endpoint: str, question: _Question) -> str:
    response = session.post(endpoint, json=_body(question), timeout=60)
    response.raise_for_status()
    return _content(response.json())


def _sequential(endpoint: str, questions: Sequence[_Question]) -> list[str]:
    """Way 1: one at a time, blocking ``requests`` on one keep-alive session."""
    import requests

    with requests.Session() as session:
        return [_blocking_ask(session, endpoint, question) for question in questions]


def _thread_batches(endpoint: str, questions: Sequence[_Question], batch: int) -> list[str]:
    """Way 2: the common hand-written pattern: submit ``batch``, wait for all, repeat."""
    import requests

    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def ask(question: _Question) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            with lock:
                sessions.append(session)
        return _blocking_ask(session, endpoint, question)

    answers: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=batch) as pool:
            for start in range(0, len(questions), batch):
                futures = [pool.submit(ask, q) for q in questions[start : start + batch]]
                answers.extend(future.result() for future in futures)
    finally:
        for session in sessions:
            session.close()
    return answers


def _with_fanout(
    endpoint: str, questions: Sequence[_Question], concurrency: int
) -> tuple[list[str | None], str | None]:
    """Way 3: fanout over one aiohttp session; failures come back as results."""
    import aiohttp

    import fanout

    async def run() -> list[fanout.Result[Any]]:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def ask(question: _Question) -> str:
                async with session.post(endpoint, json=_body(question)) as response:
                    response.raise_for_status()
                    return _content(await response.json())

            return await fanout.amap(
                ask, questions, mode="async", concurrency=concurrency, progress=False
            )

    results = asyncio.run(run())
    errors = [f"{type(r.error).__name__}: {r.error}" for r in results if not r.ok]
    return [r.value if r.ok else None for r in results], (errors[0] if errors else None)


def _timed(way: str, send: Callable[[], tuple[list[str | None], str | None]]) -> _Outcome:
    started = time.perf_counter()
    answers, first_error = send()
    return _Outcome(way, time.perf_counter() - started, answers, first_error)


def _all_or_error(send: Callable[[], list[str]], count: int) -> tuple[list[str | None], str | None]:
    """Run a way that raises on the first failure; a failure leaves every answer unknown."""
    try:
        return list(send()), None
    except Exception as exc:  # the demo reports any failure in its table, then exits 1
        return [None] * count, f"{type(exc).__name__}: {exc}"


@click.command("demo")
@click.option(
    "--n",
    "count",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="How many chat questions.",
)
@click.option(
    "--latency",
    default="50ms",
    show_default=True,
    callback=duration_option,
    metavar="DURATION",
    help="The mock API's response time: 50ms, 0.05s or 0.05.",
)
@click.option(
    "--jitter",
    default="10ms",
    show_default=True,
    callback=duration_option,
    metavar="DURATION",
    help="Response times vary uniformly by up to +/- this much.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="fanout's concurrency.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=10,
    show_default=True,
    help="Batch size of the thread-pool way.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the questions.")
def demo_command(
    count: int, latency: float, jitter: float, concurrency: int, batch: int, seed: int
) -> None:
    """Offline demo: one batch of chat questions done three ways, timed and checked.

    Starts the mock LLM API on 127.0.0.1 and asks it the same arithmetic questions one at a
    time with requests, with a thread pool in fixed batches, and with fanout. Exit code 0 when
    every answer of every way is right, 1 otherwise.
    """
    from rich.console import Console
    from rich.table import Table

    from fanout.mock import MockServer

    if importlib.util.find_spec("requests") is None:
        raise click.ClickException(
            "fanout demo compares fanout with the requests library, which is not installed; "
            "install it with: pip install requests"
        )

    console = Console(highlight=False)
    questions = _questions(count, seed)
    expected = [q.answer for q in questions]
    with MockServer(latency=latency, jitter=min(jitter, latency), seed=seed) as server:
        endpoint = f"{server.url}/v1/chat/completions"
        console.print(
            f"fanout demo: {count} chat questions (like [bold]{questions[0].text}[/]) to a mock "
            f"LLM API at {server.url}, {latency * 1000:g} ms per answer."
        )
        ways = [
            (
                "requests, one by one",
                lambda: _all_or_error(lambda: _sequential(endpoint, questions), count),
            ),
            (
                f"{batch} threads, batches of {batch}",
                lambda: _all_or_error(lambda: _thread_batches(endpoint, questions, batch), count),
            ),
            (
                f"fanout, {concurrency} at a time",
                lambda: _with_fanout(endpoint, questions, concurrency),
            ),
        ]
        outcomes = []
        try:
            for number, (way, send) in enumerate(ways, 1):
                with console.status(f"{number}/{len(ways)} {way}…"):
                    outcomes.append(_timed(way, send))
        except KeyboardInterrupt:
            console.print("Interrupted.")
            raise SystemExit(130) from None

    ideal = -(-count // concurrency) * latency
    table = Table(
        title=f"{count} questions, {latency * 1000:g} ms latency",
        caption=f"ideal at concurrency {concurrency}: {ideal:.2f} s",
    )
    for column in ("way", "wall time", "req/s", "speedup"):
        table.add_column(column, justify="left" if column == "way" else "right")
    table.add_column("answers correct", justify="right")
    baseline = outcomes[0].seconds
    all_correct = True
    for outcome in outcomes:
        correct = sum(a == e for a, e in zip(outcome.answers, expected, strict=True))
        all_correct = all_correct and correct == count
        mark = "[green]✓[/]" if correct == count else "[red]✗[/]"
        table.add_row(
            outcome.way,
            f"{outcome.seconds:.2f} s",
            f"{count / outcome.seconds:,.0f}",
            f"{baseline / outcome.seconds:.1f}x",
            f"{correct}/{count} {mark}",
        )
    console.print(table)
    for outcome in outcomes:
        if outcome.first_error is not None:
            console.print(f"[red]{outcome.way}[/]: {outcome.first_error}")
    console.print(
        "fanout: [bold]results = await fanout.amap(ask, questions, concurrency="
        f"{concurrency})[/] — one Result per question, in order, failures kept as data."
    )
    if not all_correct:
        raise SystemExit(1)
