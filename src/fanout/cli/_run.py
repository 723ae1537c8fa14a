"""``fanout run MODULE:FUNCTION INPUT.jsonl -o OUTPUT.jsonl``."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

import click

import fanout
from fanout._result import Result
from fanout.cli._util import (
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_OUTPUT,
    Signals,
    die,
    load_function,
    open_input,
)


def _validate(path: str, spool: IO[str] | None) -> int:
    """Stream the input once: every line must be JSON. Returns the item count.

    A pipe or stdin cannot be read twice, so its lines are copied to ``spool``.
    """
    count = 0
    with _open_input(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if spool is not None:
                spool.write(line if line.endswith("\n") else line + "\n")
            if not line.strip():
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                die(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
            count += 1
    return count


def _open_input(path: str) -> IO[str]:
    if path == "-":
        return os.fdopen(os.dup(sys.stdin.fileno()), encoding="utf-8")
    return open_input(path)


def _items(path: str) -> Iterator[Any]:
    with _open_input(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def record(result: Result[Any]) -> dict[str, Any]:
    """The output line for one result."""
    rec: dict[str, Any] = {"index": result.index, "ok": result.ok}
    if result.ok:
        rec["value"] = result.value
    else:
        err = result.error
        rec["error"] = {"type": type(err).__name__, "message": str(err)}
    rec["attempts"] = result.attempts
    rec["elapsed_ms"] = round(result.elapsed * 1000, 3)
    return rec


@click.command("run")
@click.argument("function")
@click.argument("input_path", metavar="INPUT.jsonl")
@click.option("-o", "--output", "output", required=True, metavar="OUTPUT.jsonl",
              help="Where to write one JSON result line per input line ('-' for stdout).")
@click.option("--mode", type=click.Choice(["auto", "sequential", "thread", "async", "process"]),
              default="auto", show_default=True, help="How each call runs.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Calls running at once (default depends on the mode).")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra attempts for a failed call (exponential backoff, full jitter).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per call before it is recorded as timed out.")
@click.option("--rate", default=None, help="At most this many call starts, like 20/s or 600/min.")
@click.option("--unordered", is_flag=True, help="Write results as they finish, not in input order.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def run_command(
    function: str,
    input_path: str,
    output: str,
    mode: str,
    concurrency: int | None,
    retries: int,
    timeout: float | None,
    rate: str | None,
    unordered: bool,
    progress: bool | None,
) -> None:
    """Call MODULE:FUNCTION on each JSON value of INPUT.jsonl; write one JSON line per
    input with index, ok, and value or error.

    Exit codes: 0 all succeeded, 1 some failed (all written), 2 bad usage or input
    (nothing run), 74 output not writable, 130/143 interrupted (finished results kept).
    """
    fn = load_function(function)
    spool: IO[str] | None = None
    if input_path == "-" or (os.path.exists(input_path) and not os.path.isfile(input_path)
                             and not os.path.isdir(input_path)):
        spool = tempfile.NamedTemporaryFile("w+", suffix=".jsonl", encoding="utf-8")  # noqa: SIM115
    total = _validate(input_path, spool)
    if spool is not None:
        spool.flush()
        input_path = spool.name
    if output != "-":
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            die(f"{output}: output directory {parent} does not exist")
    try:
        stream = fanout.imap(fn, _items(input_path), mode=mode,  # type: ignore[arg-type]
                             concurrency=concurrency, ordered=not unordered, timeout=timeout,
                             retries=retries, rate=rate, progress=progress)
    except fanout.ConfigError as exc:
        die(str(exc))
    signals = Signals()
    ok = failed = 0
    started = time.perf_counter()
    try:
        out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        die(f"{output}: cannot write output ({exc.strerror})", EXIT_OUTPUT)

    def write(result: Result[Any]) -> None:
        nonlocal ok, failed
        out.write(json.dumps(record(result), default=repr) + "\n")
        if result.ok:
            ok += 1
        else:
            failed += 1

    code = EXIT_OK
    try:
        with signals.installed():
            try:
                for result in stream:
                    write(result)
            except fanout.Interrupted as exc:
                for result in exc.results:
                    write(result)
                code = signals.exit_code
            except fanout.ConfigError as exc:
                die(str(exc))
        out.flush()
    except OSError as exc:
        die(f"{output}: cannot write output ({exc.strerror or exc})", EXIT_OUTPUT)
    finally:
        if out is not sys.stdout:
            out.close()
    wall = time.perf_counter() - started
    state = "interrupted" if code != EXIT_OK else "done"
    click.echo(
        f"{state}: {ok + failed}/{total} items, {ok} ok, {failed} failed in {wall:.2f}s",
        err=True,
    )
    if code == EXIT_OK and failed:
        code = EXIT_FAILURES
    if code != EXIT_OK and code != EXIT_FAILURES:
        click.echo("finished results are in the output; rerun to do the rest", err=True)
    sys.exit(code)
