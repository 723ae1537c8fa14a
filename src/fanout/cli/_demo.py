"""``fanout demo``: the same batch of chat questions sent five ways to a local mock LLM API.

Offline: the mock server runs in this process, in a background thread. Each question waits
on the server's latency, not on this process's CPU, so sharing the process (and the GIL) with
the clients costs the ways little and keeps the demo self-contained; the benchmarks
(``benchmarks/http.py``) run the server in its own process instead.

Every way counts the answers as they are handed back to its caller, and a progress display
(the one fanout's runs use) shows that count while it runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from fanout.cli._mock_server import duration_option
from fanout.cli._util import die

_MODEL = "mock-arithmetic-1"
#: what fanout adds over a thread pool of the same size (their speeds are in the table)
_ADDS = (
    "It adds one Result per question with failures kept as data (Executor.map raises at the "
    "first and the rest are lost), retries with backoff, a rate limit, timeouts, progress, "
    "and results in order or as they finish."
)


@dataclass(frozen=True)
class _Question:
    text: str
    answer: str


@dataclass
class _Tally:
    """Answers handed back so far, for the progress display (written by one thread)."""

    total: int
    done: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Outcome:
    way: str
    seconds: float
    answers: list[str | None]
    first_error: str | None


# A way: (endpoint, questions, tally) -> (answers, first error), counting in the tally.
_Answers = tuple[list[str | None], str | None]
_Way = Callable[[str, Sequence[_Question], _Tally], _Answers]


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


@contextmanager
def _thread_asker(endpoint: str) -> Iterator[Callable[[_Question], str]]:
    """``ask(question)`` with ``requests``, one keep-alive session per thread, all closed
    at the end: what a user writes for a thread pool."""
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

    try:
        yield ask
    finally:
        for session in sessions:
            session.close()


def _all_or_error(answers: Iterator[str], tally: _Tally) -> _Answers:
    """Collect a way that raises at its first failure; a failure leaves every answer unknown."""
    collected: list[str | None] = []
    try:
        for answer in answers:
            collected.append(answer)
            tally.done += 1
    except Exception as exc:  # the demo reports any failure in its table, then exits 1
        tally.failed += 1
        return [None] * tally.total, f"{type(exc).__name__}: {exc}"
    return collected, None


def _one_by_one(endpoint: str, questions: Sequence[_Question], tally: _Tally) -> _Answers:
    """One at a time, blocking ``requests`` on one keep-alive session: the baseline."""
    import requests

    with requests.Session() as session:
        return _all_or_error((_blocking_ask(session, endpoint, q) for q in questions), tally)


def _in_batches(batch: int) -> _Way:
    """The strawman: submit ``batch`` to a pool, wait for all of them, repeat."""

    def way(endpoint: str, questions: Sequence[_Question], tally: _Tally) -> _Answers:
        def answers(ask: Callable[[_Question], str], pool: ThreadPoolExecutor) -> Iterator[str]:
            for start in range(0, len(questions), batch):
                futures = [pool.submit(ask, q) for q in questions[start : start + batch]]
                yield from (future.result() for future in futures)

        with _thread_asker(endpoint) as ask, ThreadPoolExecutor(max_workers=batch) as pool:
            return _all_or_error(answers(ask, pool), tally)

    return way


def _pool_map(concurrency: int) -> _Way:
    """What a user would actually write: ``ThreadPoolExecutor(concurrency).map``."""

    def way(endpoint: str, questions: Sequence[_Question], tally: _Tally) -> _Answers:
        with _thread_asker(endpoint) as ask, ThreadPoolExecutor(max_workers=concurrency) as pool:
            return _all_or_error(pool.map(ask, questions), tally)

    return way


def _count(result: Any, tally: _Tally) -> Any:
    tally.done += 1
    if not result.ok:
        tally.failed += 1
    return result


def _outcome(results: list[Any]) -> _Answers:
    errors = [f"{type(r.error).__name__}: {r.error}" for r in results if not r.ok]
    return [r.value if r.ok else None for r in results], (errors[0] if errors else None)


def _fanout_threads(concurrency: int) -> _Way:
    """fanout with the same ``requests`` function as the thread pool, at the same size."""

    def way(endpoint: str, questions: Sequence[_Question], tally: _Tally) -> _Answers:
        import fanout

        with _thread_asker(endpoint) as ask:
            stream = fanout.imap(
                ask, questions, mode="thread", concurrency=concurrency, progress=False
            )
            return _outcome([_count(result, tally) for result in stream])

    return way


def _fanout_async(concurrency: int) -> _Way:
    """fanout's async mode over one aiohttp session; failures come back as results."""

    def way(endpoint: str, questions: Sequence[_Question], tally: _Tally) -> _Answers:
        import aiohttp

        import fanout

        async def run() -> list[Any]:
            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def ask(question: _Question) -> str:
                    async with session.post(endpoint, json=_body(question)) as response:
                        response.raise_for_status()
                        return _content(await response.json())

                stream = fanout.aimap(
                    ask, questions, mode="async", concurrency=concurrency, progress=False
                )
                return [_count(result, tally) async for result in stream]

        return _outcome(asyncio.run(run()))

    return way


def _timed(
    way: str, send: _Way, endpoint: str, questions: Sequence[_Question], label: str, show: bool
) -> _Outcome:
    """Run one way, timed; ``show``: with a progress display titled ``label``."""
    from fanout._progress import Progress

    tally = _Tally(len(questions))
    display = Progress(tally, label) if show else None
    if display is not None:
        display.start()
    try:
        started = time.perf_counter()
        answers, first_error = send(endpoint, questions, tally)
        seconds = time.perf_counter() - started
    finally:
        if display is not None:
            display.stop()
    return _Outcome(way, seconds, answers, first_error)


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
    """Offline demo: one batch of chat questions done five ways, timed and checked.

    Starts the mock LLM API on 127.0.0.1 and asks it the same arithmetic questions: one at a
    time with requests; with a thread pool in fixed batches; with ThreadPoolExecutor.map; with
    fanout.map over the same requests function; and with fanout's async mode over aiohttp.
    Exit code 0 when every answer of every way is right, 1 otherwise.
    """
    if importlib.util.find_spec("requests") is None:
        die(
            "fanout demo compares fanout with the requests library, which is not installed: "
            "pip install 'fanout[demo]'"
        )
    from rich.console import Console
    from rich.table import Table

    from fanout._progress import want_progress
    from fanout.mock import MockServer

    console = Console(highlight=False)
    questions = _questions(count, seed)
    expected = [q.answer for q in questions]
    ways: list[tuple[str, _Way]] = [
        ("requests, one by one", _one_by_one),
        (f"{batch} threads, batches of {batch}", _in_batches(batch)),
        (f"ThreadPoolExecutor({concurrency}).map", _pool_map(concurrency)),
        (f"fanout.map, {concurrency} threads", _fanout_threads(concurrency)),
        (f"fanout.amap + aiohttp, {concurrency}", _fanout_async(concurrency)),
    ]
    show = want_progress(None)
    with MockServer(latency=latency, jitter=min(jitter, latency), seed=seed) as server:
        endpoint = f"{server.url}/v1/chat/completions"
        console.print(
            f"fanout demo: {count} chat questions (like [bold]{questions[0].text}[/]) to a mock "
            f"LLM API at {server.url}, {latency * 1000:g} ms per answer."
        )
        outcomes = []
        try:
            for number, (way, send) in enumerate(ways, 1):
                label = f"{number}/{len(ways)} {way}"
                outcomes.append(_timed(way, send, endpoint, questions, label, show))
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
    pool, threads = outcomes[2].seconds, outcomes[3].seconds
    console.print(
        f"Same requests code, same concurrency ({concurrency}): [bold]fanout.map(ask, questions, "
        f"concurrency={concurrency})[/] ran at {pool / threads:.2f}x the speed of "
        f"ThreadPoolExecutor({concurrency}).map(ask, questions). {_ADDS}"
    )
    if not all_correct:
        raise SystemExit(1)
