"""``fanout http INPUT.jsonl -o OUTPUT.jsonl``: send a batch of requests, safely.

The run is the core's: ``fanout.aimap`` drives one ``HttpClient`` call per
request with the concurrency, rate, retries, timeout, ordering and progress
asked for. This module validates the input first (nothing is sent before every
line is known good), writes each record as soon as order allows, and turns
signals and a failing output file into a clean stop with a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

import fanout
from fanout._journal import CorruptJournal, Journal, JournalError, Scan, open_journal
from fanout._loop import new_event_loop
from fanout.cli._util import (
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_OUTPUT,
    Signals,
    die,
    load_function,
    open_input,
    signal_exit_code,
)
from fanout.http._client import HttpClient, is_retryable
from fanout.http._ratelimit import Estimator, default_estimator, request_tokens
from fanout.http._record import RecordMaker
from fanout.http._spec import (
    Checked,
    Context,
    InputError,
    InvalidLine,
    RequestSpec,
    SpecError,
    cached_specs,
    iter_specs,
    make_context,
    validate,
)
from fanout.http._summary import Summary

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_retry_on(text: str) -> frozenset[int]:
    """``"429,500-504"`` or ``"429,5xx"`` -> the statuses; ``"none"`` -> no status."""
    if text.strip().lower() in ("", "none"):
        return frozenset()
    codes: set[int] = set()
    for part in text.split(","):
        token = part.strip().lower()
        try:
            if re.fullmatch(r"[1-5]xx", token):
                base = int(token[0]) * 100
                codes.update(range(base, base + 100))
            elif "-" in token:
                low, high = (int(x) for x in token.split("-", 1))
                if not 100 <= low <= high <= 599:
                    raise ValueError
                codes.update(range(low, high + 1))
            else:
                code = int(token)
                if not 100 <= code <= 599:
                    raise ValueError
                codes.add(code)
        except ValueError:
            raise click.BadParameter(
                f"expected status codes like 429,500-504 or 5xx (got {part.strip()!r})",
                param_hint="'--retry-on'",
            ) from None
    return frozenset(codes)


def parse_size(text: str | None) -> int | None:
    """``"65536"``, ``"64k"``, ``"1MB"`` -> bytes."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if match is None:
        raise click.BadParameter(
            f"expected a size in bytes like 65536, 64k or 1M (got {text!r})",
            param_hint="'--max-body'",
        )
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_concurrency(ctx: click.Context, param: click.Parameter, value: Any) -> int | str:
    """``-c``: a number, ``auto`` or ``auto:N`` (a latency-driven limit of at most N)."""
    text = str(value).strip().lower()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if re.fullmatch(r"auto(:[1-9][0-9]*)?", text):
        return text
    raise click.BadParameter(f"expected a number >= 1, auto or auto:N (got {value!r})")


@dataclass
class _Stop:
    signum: int | None = None
    error: JournalError | None = None


class _Writer:
    """Collects finished lines and writes them in one go once per loop turn, so a
    record reaches the file as soon as order allows without a syscall per record."""

    def __init__(self, journal: Journal, loop: asyncio.AbstractEventLoop,
                 on_error: Any) -> None:
        self._journal = journal
        self._loop = loop
        self._on_error = on_error
        self._pending: list[bytes] = []
        self._scheduled = False
        self.failed = False

    def add(self, line: bytes) -> None:
        self._pending.append(line)
        if not self._scheduled and not self.failed:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        try:
            self.flush()
        except JournalError as exc:
            self._on_error(exc)

    def flush(self) -> None:
        if not self._pending or self.failed:
            return
        data = b"".join(self._pending)
        self._pending = []
        try:
            self._journal.write(data)
        except JournalError:
            self.failed = True
            raise


class _Items:
    """The requests to send, re-read from the (validated) input; knows its length
    so the progress bar has a total."""

    def __init__(self, path: str, ctx: Context, checked: Checked, done: set[Any],
                 total: int) -> None:
        self._path = path
        self._ctx = ctx
        self._checked = checked
        self._done = done
        self._total = total

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[RequestSpec | InvalidLine]:
        if self._checked.cached is not None:
            yield from cached_specs(self._checked, self._done)
            return
        with open(self._path, "rb") as handle:
            yield from iter_specs(handle, self._ctx, self._checked, self._done)


@dataclass(frozen=True)
class _Settings:
    """Everything one run needs, checked."""

    source: str
    label: str
    output: str
    ctx: Context
    statuses: frozenset[int]
    max_body: int | None
    concurrency: int | str
    rate: str | None
    budget: str | None
    estimator: Estimator
    timeout: float
    retries: int
    max_retry_after: float
    unordered: bool
    include_headers: bool
    resume: bool
    retry_failed: bool
    skip_invalid: bool
    summary_json: str | None
    progress: bool | None
    insecure: bool


async def _send(items: _Items, client: HttpClient, journal: Journal, opts: _Settings,
                summary: Summary, stop: _Stop) -> None:
    """Run the batch; a signal or a write error stops it gracefully: nothing new
    starts, calls in flight are cancelled, and what finished is still written."""
    loop = asyncio.get_running_loop()
    halt = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.signum is not None:
            # a second signal while winding down: leave at once
            os._exit(signal_exit_code(signum))
        stop.signum = signum
        halt.set()

    def on_write_error(exc: JournalError) -> None:
        if stop.error is None:
            stop.error = exc
            halt.set()

    writer = _Writer(journal, loop, on_write_error)
    maker = RecordMaker(include_headers=opts.include_headers)
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    # Result batches as they finish: one iteration step per burst, not per request.
    batches = fanout.aimap_batches(
        client, items, mode="async", concurrency=opts.concurrency, ordered=not opts.unordered,
        timeout=opts.timeout, retries=opts.retries, retry_on=is_retryable, rate=opts.rate,
        budget=opts.budget, cost=request_tokens(opts.estimator),
        progress=opts.progress, max_retry_after=opts.max_retry_after, stop=halt,
    )
    try:
        async with contextlib.aclosing(batches):
            async for batch in batches:
                if writer.failed:
                    continue  # the output refused a write: just let the run wind down
                for result in batch:
                    writer.add(maker.line(result))
                    summary.add(result)
        writer.flush()
    except JournalError as exc:
        stop.error = exc
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        if client.flow is not None:
            summary.flow = client.flow.state()
        await client.aclose()


def _spool_stdin() -> str:
    """Standard input can't be read twice: copy it to a temporary file."""
    spool = tempfile.NamedTemporaryFile("wb", prefix="fanout-stdin-", suffix=".jsonl",  # noqa: SIM115
                                        delete=False)
    try:
        with spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
    except BaseException:
        os.unlink(spool.name)
        raise
    return spool.name


@click.command("http")
@click.argument("input_path", metavar="INPUT.jsonl")
@click.option("-o", "--output", default="-", show_default=True, metavar="OUTPUT.jsonl",
              help="Where to write one JSON record per request ('-': standard output).")
@click.option("-c", "--concurrency", default="100", callback=parse_concurrency,
              metavar="N|auto[:N]",
              show_default=True,
              help="Requests in flight at once (also the pool size); auto: find it from the "
                   "latency, up to 100 (auto:N: up to N).")
@click.option("--rate", default=None, metavar="N/PERIOD",
              help="At most this many request starts per period, retries included, "
                   "e.g. 20/s or 600/min.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, metavar="N",
              help="Requests per minute: the same as --rate N/min.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, metavar="N",
              help="Tokens per minute: pace the starts by each request's estimated tokens "
                   "(prompt characters / 4 + max_tokens x n), retries included.")
@click.option("--token-estimator", default=None, metavar="MODULE:FUNCTION",
              help="Estimate a request's tokens with FUNCTION(body, url) -> number instead.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Seconds per attempt, in total: connect, send, headers and body.")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra attempts after connection errors, timeouts and --retry-on statuses "
                   "(exponential backoff with full jitter).")
@click.option("--retry-on", default="429,500,502,503,504", show_default=True,
              metavar="STATUSES", help="Statuses worth a retry: 429,500-504 or 5xx, or none.")
@click.option("--max-retry-after", type=click.FloatRange(min=0), default=120.0,
              show_default=True,
              help="Longest Retry-After (s) honoured; beyond it the request fails at once.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="A header for every request; ${VAR} is read from the environment.")
@click.option("--unordered", is_flag=True,
              help="Write records as requests finish instead of in input order.")
@click.option("--include-headers", is_flag=True,
              help="Keep the response headers in each record (secrets redacted).")
@click.option("--max-body", default=None, metavar="BYTES",
              help="Keep at most this much of each body (e.g. 65536, 64k, 1M).")
@click.option("--resume", is_flag=True,
              help="Skip requests whose id is already in OUTPUT (repairs a torn last line).")
@click.option("--retry-failed", is_flag=True,
              help="With --resume: redo the requests whose record failed.")
@click.option("--skip-invalid", is_flag=True,
              help="Record invalid input lines as failed and send the rest.")
@click.option("--summary-json", default=None, metavar="FILE",
              help="Also write the summary as JSON to FILE.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
def http_command(
    input_path: str,
    output: str,
    concurrency: int | str,
    rate: str | None,
    rpm: int | None,
    tpm: int | None,
    token_estimator: str | None,
    timeout: float,
    retries: int,
    retry_on: str,
    max_retry_after: float,
    headers: tuple[str, ...],
    unordered: bool,
    include_headers: bool,
    max_body: str | None,
    resume: bool,
    retry_failed: bool,
    skip_invalid: bool,
    summary_json: str | None,
    progress: bool | None,
    insecure: bool,
) -> None:
    """Send one HTTP request per line of INPUT.jsonl ('-' for standard input); write one
    JSON record per request to OUTPUT.jsonl.

    \b
    A line is a JSON object
      {"id": "q1", "method": "POST", "url": "https://...", "headers": {...},
       "params": {...}, "json": {...}}      ("data" for a raw body)
    or a JSON string or a plain URL (a GET). "id" defaults to the line number.
    Header values may use ${VAR} from the environment; they are never written out.

    \b
    Exit codes: 0 all succeeded; 1 some failed (all recorded); 2 bad usage or input
    (nothing sent); 74 output not writable; 130/143 interrupted (rerun with --resume).
    """
    statuses = parse_retry_on(retry_on)
    body_cap = parse_size(max_body)
    if retry_failed and not resume:
        die("--retry-failed needs --resume")
    if resume and output == "-":
        die("--resume needs an output file (-o OUTPUT.jsonl)")
    if rpm is not None:
        if rate is not None:
            die("--rpm and --rate both set the request rate: give one of them")
        rate = f"{rpm}/min"
    if rate is not None:
        try:
            from fanout._limits import parse_rate

            parse_rate(rate, name="--rate")
        except fanout.ConfigError as exc:
            die(str(exc))
    estimator: Estimator = default_estimator
    if token_estimator is not None:
        loaded = load_function(token_estimator)
        if not callable(loaded):
            die(f"--token-estimator {token_estimator}: not a function")
        estimator = loaded
    label = "<stdin>" if input_path == "-" else input_path
    try:
        ctx = make_context(label, list(headers), os.environ)
    except SpecError as exc:
        die(str(exc))
    if output != "-":
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            die(f"{output}: output directory {parent} does not exist")
        if os.path.isdir(output):
            die(f"{output}: is a directory, expected a file")
    if summary_json is not None and not os.path.isdir(
        os.path.dirname(os.path.abspath(summary_json))
    ):
        die(f"{summary_json}: directory of --summary-json does not exist")

    signals = Signals()
    spooled = None
    try:
        with _early_signals(signals):
            # until the run installs its own handlers, SIGINT/SIGTERM end it here
            try:
                if input_path == "-":
                    spooled = _spool_stdin()
                opts = _Settings(
                    source=spooled or input_path, label=label, output=output, ctx=ctx,
                    statuses=statuses, max_body=body_cap, concurrency=concurrency, rate=rate,
                    budget=f"{tpm}/min" if tpm is not None else None, estimator=estimator,
                    timeout=timeout, retries=retries, max_retry_after=max_retry_after,
                    unordered=unordered, include_headers=include_headers, resume=resume,
                    retry_failed=retry_failed, skip_invalid=skip_invalid,
                    summary_json=summary_json, progress=progress, insecure=insecure,
                )
                started = time.perf_counter()
                checked, journal, found = _prepare(opts)
            except KeyboardInterrupt:
                die("interrupted before anything was sent", signals.exit_code)
        _run(opts, checked, journal, found, started)
    finally:
        if spooled is not None:
            with contextlib.suppress(OSError):
                os.unlink(spooled)


def _early_signals(signals: Signals) -> contextlib.AbstractContextManager[Any]:
    if threading.current_thread() is threading.main_thread():
        return signals.installed()
    return contextlib.nullcontext()


def _prepare(opts: _Settings) -> tuple[Checked, Journal, Scan]:
    """Validate the input, then open (and on --resume repair) the output."""
    with open_input(opts.source, label=opts.label, binary=True) as handle:
        try:
            checked = validate(handle, opts.ctx, skip_invalid=opts.skip_invalid)
        except InputError as exc:
            die(str(exc))
    try:
        journal, found = open_journal(opts.output, resume=opts.resume,
                                      drop_failed=opts.retry_failed)
    except CorruptJournal as exc:
        die(str(exc))
    except JournalError as exc:
        die(f"cannot write output {exc}", EXIT_OUTPUT)
    return checked, journal, found


def _run(opts: _Settings, checked: Checked, journal: Journal, found: Scan,
         started: float) -> None:
    todo = checked.left(found.done)
    items = _Items(opts.source, opts.ctx, checked, found.done, todo)
    summary = Summary(requests=checked.count, skipped=checked.count - todo,
                      kept_failed=len(found.failed))
    pool = opts.concurrency
    if isinstance(pool, str):  # auto[:N]: the pool holds the most the limit may reach
        pool = int(pool.partition(":")[2] or 100)
    client = HttpClient(concurrency=pool,
                        retry_statuses=opts.statuses, max_body=opts.max_body,
                        include_headers=opts.include_headers, verify_tls=not opts.insecure)
    stop = _Stop()
    try:
        if todo:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(_send(items, client, journal, opts, summary, stop))
    except fanout.ConfigError as exc:
        die(str(exc))
    finally:
        journal.close()
    wall = time.perf_counter() - started
    _finish(opts, summary, found.failed, stop, wall)


def _finish(opts: _Settings, summary: Summary, kept_failed: set[Any], stop: _Stop,
            wall: float) -> None:
    if stop.error is not None:
        code = EXIT_OUTPUT
    elif stop.signum is not None:
        code = signal_exit_code(stop.signum)
    elif summary.failed or kept_failed:
        code = EXIT_FAILURES
    else:
        code = EXIT_OK
    interrupted = signal.Signals(stop.signum).name if stop.signum is not None else None
    if opts.summary_json is not None:
        document = summary.as_dict(wall, exit_code=code, interrupted=interrupted)
        try:
            with open(opts.summary_json, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=2)
                fh.write("\n")
        except OSError as exc:
            die(f"{opts.summary_json}: cannot write summary ({exc.strerror})", EXIT_OUTPUT)
    if stop.error is not None:
        full = stop.error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        hint = "free space (or raise the file size limit), then " if full else ""
        die(f"cannot write output {stop.error}; stopped sending: {hint}rerun with --resume",
            EXIT_OUTPUT)
    click.echo(summary.render(wall, interrupted=interrupted), err=True)
    if kept_failed:
        click.echo(f"  {len(kept_failed)} failed records kept from before "
                   "(--resume --retry-failed redoes them)", err=True)
    if interrupted:
        click.echo("finished records are in the output; rerun with --resume to do the rest",
                   err=True)
    sys.exit(code)
