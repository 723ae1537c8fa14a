"""``fanout run MODULE:FUNCTION INPUT -o OUTPUT.jsonl``: a function over a file.

Built like ``fanout http``: the input is checked first (a file wholly, before
anything runs; a pipe item by item, as it comes), the run is the core's
(``fanout.aimap_batches`` on an event loop of its own, the user's function in
threads or processes as ``--mode`` says), and each record goes to the durable
journal as soon as order allows, so ``--resume`` after a crash or ``kill -9``
does only what is missing. A signal, a full disk or a reader that went away
(``| head``) stops the run gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import inspect
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import click

import fanout
from fanout._flow import flow_summary
from fanout._journal import Journal, LineWriter, Scan, open_journal
from fanout._loop import new_event_loop
from fanout._progress_rate import overall_rate_text
from fanout.cli._run_input import (
    FileItems,
    Format,
    InvalidInput,
    Source,
    StreamItems,
    acall_item,
    call_item,
    read_lines,
    validate,
)
from fanout.cli._run_output import Encoder, Tally, summary_document
from fanout.cli._util import (
    EXIT_OUTPUT,
    RunStop,
    Signals,
    check_output_paths,
    die,
    divert_stdout,
    exit_broken_pipe,
    load_executor,
    load_function,
    output_errors,
    refuse_same_file,
    resume_command,
    write_summary_json,
)
from fanout.executors import MODES, Executor


@dataclass(frozen=True)
class _Settings:
    """The options of one run, checked."""

    output: str
    mode: str
    executor: Executor | None
    concurrency: int | None
    retries: int
    timeout: float | None
    rate: str | None
    unordered: bool
    progress: bool | None
    summary_json: str | None


@click.command("run")
@click.argument("function")
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", "output", required=True, metavar="OUTPUT.jsonl",
              help="Where to write one JSON record per input item ('-' for stdout).")
@click.option("--lines", "text_lines", is_flag=True,
              help="Each non-blank line of INPUT is one string item.")
@click.option("--csv", "csv_rows", is_flag=True,
              help="INPUT is CSV: each row is one item, a dict keyed by the header.")
@click.option("--spread", is_flag=True,
              help="Pass a JSON array item as *args and an object as **kwargs.")
@click.option("--mode", type=click.Choice(MODES),
              default="auto", show_default=True, help="How each call runs.")
@click.option("--executor", "executor_spec", default=None, metavar="MODULE:NAME",
              help="A configured executor instead of --mode: an executor instance, or a "
                   "function returning one (e.g. a cluster backend with its address).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="For --mode dask: the Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                   "(default: DASK_SCHEDULER_ADDRESS, else a cluster on this machine).")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Calls running at once (default depends on the mode).")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra attempts for a failed call (exponential backoff, full jitter).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per call before it is recorded as timed out.")
@click.option("--rate", default=None, help="At most this many call starts, like 20/s or 600/min.")
@click.option("--unordered", is_flag=True, help="Write results as they finish, not in input order.")
@click.option("--resume", is_flag=True,
              help="Skip the items whose index is already in OUTPUT (repairs a torn last line).")
@click.option("--retry-failed", is_flag=True,
              help="With --resume: redo the items whose record failed.")
@click.option("--default", "default", type=click.Choice(["str"]), default=None,
              help="Write str(value) for a return value that is not JSON, instead of "
                   "recording that item as failed.")
@click.option("--summary-json", default=None, metavar="FILE",
              help="Also write the counts of the run as JSON to FILE.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def run_command(
    function: str,
    input_path: str,
    output: str,
    text_lines: bool,
    csv_rows: bool,
    spread: bool,
    mode: str,
    executor_spec: str | None,
    scheduler: str | None,
    concurrency: int | None,
    retries: int,
    timeout: float | None,
    rate: str | None,
    unordered: bool,
    resume: bool,
    retry_failed: bool,
    default: str | None,
    summary_json: str | None,
    progress: bool | None,
) -> None:
    """Call MODULE:FUNCTION on each item of INPUT ('-' for standard input); write one
    JSON record per item to OUTPUT.jsonl, with index, ok, and value or error.

    \b
    INPUT holds one JSON value per line (the default), or with --lines one string
    per line, or with --csv one dict per row. A file is checked whole before
    anything runs; a pipe is read as the run goes, a bad line failing its item.

    \b
    Exit codes: 0 all succeeded; 1 some failed (all written); 2 bad usage or input
    (nothing run); 74 output not writable; 130/143 interrupted (finished results
    kept: rerun with --resume); 141 the reader of standard output went away.
    """
    fmt = _format(text_lines, csv_rows, spread)
    if retry_failed and not resume:
        die("--retry-failed needs --resume")
    if resume and output == "-":
        die("--resume needs an output file (-o OUTPUT.jsonl)")
    if rate is not None:
        try:
            fanout.parse_rate(rate)
        except fanout.ConfigError as exc:
            die(f"--rate: {exc}")
    check_output_paths(output, summary_json)
    refuse_same_file(input_path, output, summary_json)
    fn: Callable[..., Any] = load_function(function)  # type: ignore[assignment]
    executor = load_executor(executor_spec) if executor_spec is not None else None
    if scheduler is not None:
        if executor is not None or mode != "dask":
            die("--scheduler goes with --mode dask (not with --executor or another mode)")
        try:
            executor = fanout.DaskExecutor(scheduler)
        except fanout.ConfigError as exc:
            die(str(exc))
    if executor is not None and mode not in ("auto", executor.mode):
        die(f"--mode {mode} and --executor {executor_spec} (a {executor.mode} executor) "
            "disagree: give one of them")
    opts = _Settings(output=output, mode=mode, executor=executor, concurrency=concurrency,
                     retries=retries,
                     timeout=timeout, rate=rate, unordered=unordered, progress=progress,
                     summary_json=summary_json)
    label = "<stdin>" if input_path == "-" else input_path
    signals = Signals()
    started = time.perf_counter()
    with _early_signals(signals):
        # until the run installs its own handlers, SIGINT/SIGTERM end it here
        try:
            items, journal, found = _prepare(input_path, label, fmt, spread, output, resume,
                                             retry_failed)
        except KeyboardInterrupt:
            die("interrupted before anything was run", signals.exit_code)
    if output == "-":
        divert_stdout()  # what the function prints must not land among the records
    tally = Tally(skipped=len(found.done), failed_before=len(found.failed))
    if isinstance(items, FileItems):
        tally.items, tally.todo = items.count, len(items)
    stop = RunStop()
    before = fanout.last_run()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_drive(_wrap(fn, spread), items, journal, opts,
                              Encoder(default_str=default == "str"), tally, stop))
    except fanout.ConfigError as exc:
        die(str(exc))
    except OSError as exc:
        die(f"{label}: cannot read input ({exc.strerror or exc})")
    finally:
        journal.close()
    if isinstance(items, StreamItems) and not stop.event.is_set():
        tally.items, tally.todo = items.count, items.count - items.skipped
    info = fanout.last_run()
    _finish(opts, tally, stop, time.perf_counter() - started,
            info if info is not before else None)


def _prepare(input_path: str, label: str, fmt: Format, spread: bool, output: str,
             resume: bool, retry_failed: bool) -> tuple[FileItems | StreamItems, Journal, Scan]:
    """Check a file input whole, then open (and on --resume repair) the output."""
    source, stream = _open_source(input_path, label)
    count = 0
    if source is not None:
        try:
            count = validate(source, fmt, label, spread)
        except InvalidInput as exc:
            die(str(exc))
    journal, found = _open_output(output, resume, retry_failed)
    if source is not None:
        return FileItems(source, fmt, label, spread, count, found.done), journal, found
    assert stream is not None
    return StreamItems(stream, fmt, label, spread, found.done), journal, found


def _format(text_lines: bool, csv_rows: bool, spread: bool) -> Format:
    if text_lines and csv_rows:
        die("--lines and --csv cannot be used together")
    if text_lines:
        if spread:
            die("--spread needs JSON arrays or objects, but --lines items are strings")
        return Format.LINES
    return Format.CSV if csv_rows else Format.JSON


def _wrap(fn: Callable[..., Any], spread: bool) -> Callable[..., Any]:
    """What the core calls on each item: the function on the item's value (picklable,
    for process mode; a coroutine function stays one, for auto mode)."""
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with async __call__
    )
    call = functools.partial(acall_item if is_async else call_item, fn, spread)
    return functools.update_wrapper(call, fn, assigned=("__name__", "__qualname__"), updated=())


def _early_signals(signals: Signals) -> contextlib.AbstractContextManager[Any]:
    if threading.current_thread() is threading.main_thread():
        return signals.installed()
    return contextlib.nullcontext()


def _open_source(path: str, label: str) -> tuple[Source | None, Iterable[bytes] | None]:
    """A regular file (read twice: checked first) or a stream (read once, as it comes)."""
    if path == "-":
        try:
            fd = sys.stdin.fileno()
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except (AttributeError, ValueError, OSError):
            return None, sys.stdin.buffer  # not a real descriptor (a test runner's input)
        if regular:
            return Source(label, os.dup(fd)), None
        return None, read_lines(os.dup(fd))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        die(f"{label}: no such input file")
    except OSError as exc:
        die(f"{label}: cannot read input ({exc.strerror})")
    if stat.S_ISDIR(mode):
        die(f"{label}: is a directory, expected an input file")
    try:
        if stat.S_ISREG(mode):
            open(path, "rb").close()
            return Source(path), None
        # a named pipe or a device: read as it comes
        return None, read_lines(os.open(path, os.O_RDONLY))
    except OSError as exc:
        die(f"{label}: cannot read input ({exc.strerror})")


def _open_output(output: str, resume: bool, retry_failed: bool) -> tuple[Journal, Scan]:
    with output_errors():
        return open_journal(output, resume=resume, drop_failed=retry_failed, key="index")


async def _drive(call: Callable[..., Any], items: FileItems | StreamItems, journal: Journal,
                 opts: _Settings, encoder: Encoder, tally: Tally, stop: RunStop) -> None:
    """The run: records written as soon as order allows; a signal or a failed write
    stops it gracefully (what finished is still written)."""
    loop = asyncio.get_running_loop()
    writer = LineWriter(journal, loop, stop.on_write_error)
    batches = fanout.aimap_batches(
        call, items, mode=opts.mode, executor=opts.executor, concurrency=opts.concurrency,
        ordered=not opts.unordered, timeout=opts.timeout, retries=opts.retries,
        rate=opts.rate, progress=opts.progress, stop=stop.event,
    )
    with stop.signals_on(loop):
        async with contextlib.aclosing(batches):
            async for batch in batches:
                if writer.failed:
                    continue  # the output refused a write: let the run wind down
                for result in batch:
                    line, error_type = encoder.line(result)
                    writer.add(line)
                    tally.add(result, error_type)
        writer.flush()


def _finish(opts: _Settings, tally: Tally, stop: RunStop, wall: float,
            info: fanout.RunInfo | None) -> None:
    """``info``: the run's own account (None when nothing was left to run)."""
    code = stop.exit_code(failures=bool(tally.failures or tally.failed_before))
    interrupted = stop.interrupted
    if opts.summary_json is not None:
        write_summary_json(opts.summary_json, summary_document(
            tally, wall=wall, exit_code=code, interrupted=interrupted, info=info))
    if stop.broken_pipe:
        exit_broken_pipe()
    to_file = opts.output != "-"
    resume = f"resume with: {resume_command()}" if to_file else ""
    if stop.error is not None:
        full = stop.error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        hint = "free space (or raise the file size limit), then " if full else ""
        die(f"cannot write output {stop.error}; stopped the run"
            + (f": {hint}{resume}" if resume else ""), EXIT_OUTPUT)
    counts = (f"{tally.ok} ok, {tally.failures} failed in {wall:.2f}s, "
              f"{overall_rate_text(tally.done, wall)}")
    if info is not None:
        click.echo(f"mode {info.mode_reason}", err=True)
        flow = flow_summary(info.flow)
        if flow:
            click.echo(f"flow {flow}", err=True)
        if info.stuck:
            click.echo(f"{info.stuck} calls timed out and could not be stopped: they were still "
                       "running at the end", err=True)
    if interrupted:
        where = opts.output if to_file else "standard output"
        of_total = f"/{tally.items}" if tally.items is not None else ""
        click.echo(f"interrupted: {tally.written}{of_total} items written to {where} "
                   f"({counts})" + (f"; {resume}" if resume else ""), err=True)
    else:
        of_todo = f"/{tally.todo}" if tally.todo is not None else ""
        before = f", {tally.skipped} already in the output" if tally.skipped else ""
        click.echo(f"done: {tally.done}{of_todo} items, {counts}{before}", err=True)
        if tally.failed_before:
            click.echo(f"  {tally.failed_before} failed records kept from before "
                       "(--resume --retry-failed redoes them)", err=True)
    sys.exit(code)
