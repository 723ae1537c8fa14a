"""What ``fanout http`` and ``fanout chat`` share: ``-c N|auto[:N]``, standard input
spooled to a file (it is read twice), signals before the run takes them over, the
validated input read again as the run asks for it, and the end of a run (summary,
messages, exit code)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from typing import Any, NoReturn

import click

from fanout._errors import ConfigError
from fanout._journal import Journal, LineWriter, Scan
from fanout._loop import new_event_loop
from fanout._result import Result
from fanout.cli._util import (
    EXIT_OUTPUT,
    RunStop,
    Signals,
    die,
    exit_broken_pipe,
    resume_command,
    skip_bom,
    write_summary_json,
)
from fanout.http._client import HttpClient
from fanout.http._spec import (
    Checked,
    Context,
    InvalidLine,
    LineParser,
    RequestSpec,
    cached_specs,
    iter_specs,
    parse_line,
)
from fanout.http._summary import Summary


def parse_concurrency(ctx: click.Context, param: click.Parameter, value: Any) -> int | str:
    """``-c``: a number, ``auto`` or ``auto:N`` (a latency-driven limit of at most N)."""
    text = str(value).strip().lower()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if re.fullmatch(r"auto(:[1-9][0-9]*)?", text):
        return text
    raise click.BadParameter(f"expected a number >= 1, auto or auto:N (got {value!r})")


def pool_size(concurrency: int | str, default: int = 100) -> int:
    """The connections to keep for ``-c``: under ``auto[:N]`` the most the limit may reach."""
    if isinstance(concurrency, str):
        return int(concurrency.partition(":")[2] or default)
    return concurrency


def early_signals(signals: Signals) -> contextlib.AbstractContextManager[Any]:
    """SIGINT and SIGTERM end the command here until the run installs its own handlers
    (only the main thread can take signals)."""
    if threading.current_thread() is threading.main_thread():
        return signals.installed()
    return contextlib.nullcontext()


@contextlib.contextmanager
def before_the_run(signals: Signals) -> Iterator[None]:
    """Until the run installs its own handlers, SIGINT and SIGTERM end the command
    here, with their exit code: nothing was sent yet."""
    with early_signals(signals):
        try:
            yield
        except KeyboardInterrupt:
            die("interrupted before anything was sent", signals.exit_code)


@contextlib.contextmanager
def readable_input(path: str) -> Iterator[str]:
    """``path``; for ``-``, standard input spooled to a temporary file, removed at
    the end."""
    spooled = spool_stdin() if path == "-" else None
    try:
        yield spooled or path
    finally:
        if spooled is not None:
            with contextlib.suppress(OSError):
                os.unlink(spooled)


def spool_stdin() -> str:
    """Standard input can't be read twice: copy it to a temporary file; its path."""
    # A signal between the file's creation and the try below would leave the file
    # behind: it waits (blocked) until the try that removes the file can catch it.
    blocked = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        spool = tempfile.NamedTemporaryFile("wb", prefix="fanout-stdin-",  # noqa: SIM115
                                            suffix=".jsonl", delete=False)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a waiting signal is raised here
        with spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
    except BaseException:
        spool.close()
        os.unlink(spool.name)
        raise
    return spool.name


class Requests:
    """The requests to send, re-read from the (validated) input; knows its length
    so the progress bar has a total."""

    def __init__(self, path: str, ctx: Context, checked: Checked, done: set[Any],
                 total: int, parse: LineParser = parse_line) -> None:
        self._path = path
        self._ctx = ctx
        self._checked = checked
        self._done = done
        self._total = total
        self._parse = parse

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[RequestSpec | InvalidLine]:
        if self._checked.cached is not None:
            yield from cached_specs(self._checked, self._done)
            return
        with open(self._path, "rb") as handle:
            skip_bom(handle)
            yield from iter_specs(handle, self._ctx, self._checked, self._done, self._parse)


def run_and_finish(send: Callable[[RunStop], Coroutine[Any, Any, None]], *, todo: int,
                   journal: Journal, found: Scan, summary: Summary, output: str,
                   summary_json: str | None, started: float) -> NoReturn:
    """Run ``send(stop)`` on fanout's event loop when anything is left to do, close
    the output, and end the command (``finish``)."""
    stop = RunStop()
    try:
        if todo:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(send(stop))
    except ConfigError as exc:
        die(str(exc))
    finally:
        journal.close()
    finish(output, summary_json, summary, found.failed, stop, time.perf_counter() - started)


async def write_records(batches: AsyncGenerator[list[Result[Any]], None],
                        line: Callable[[Result[Any]], bytes], journal: Journal,
                        summary: Summary, stop: RunStop, client: HttpClient) -> None:
    """Each result's record to the output as the run hands it over; a signal or a
    write error stops the run gracefully: nothing new starts, requests in flight
    are cancelled, and what finished is still written. Closes ``client``."""
    loop = asyncio.get_running_loop()
    writer = LineWriter(journal, loop, stop.on_write_error)
    try:
        with stop.signals_on(loop):
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    if writer.failed:
                        continue  # the output refused a write: let the run wind down
                    for result in batch:
                        writer.add(line(result))
                        summary.add(result)
            writer.flush()
    finally:
        if client.flow is not None:
            summary.flow = client.flow.state()
        await client.aclose()


def finish(output: str, summary_json: str | None, summary: Summary, kept_failed: set[Any],
           stop: RunStop, wall: float) -> NoReturn:
    """End the command: the ``--summary-json`` file, the summary on stderr, how to
    resume after a stop, and the exit code (see ``RunStop.exit_code``)."""
    code = stop.exit_code(failures=bool(summary.failed or kept_failed))
    interrupted = stop.interrupted
    if summary_json is not None:
        write_summary_json(summary_json,
                           summary.as_dict(wall, exit_code=code, interrupted=interrupted))
    if stop.broken_pipe:
        exit_broken_pipe()
    resume = f"rerun with: {resume_command()}" if output != "-" else ""
    if stop.error is not None:
        full = stop.error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        hint = "free space (or raise the file size limit), then " if full else ""
        die(f"cannot write output {stop.error}; stopped sending"
            + (f": {hint}{resume}" if resume else ""), EXIT_OUTPUT)
    click.echo(summary.render(wall, interrupted=interrupted), err=True)
    if kept_failed:
        click.echo(f"  {len(kept_failed)} failed records kept from before "
                   "(--resume --retry-failed redoes them)", err=True)
    if interrupted:
        where = f"{output}; {resume}" if resume else "standard output"
        click.echo(f"finished records are in {where}", err=True)
    sys.exit(code)
