"""What every fanout command shares: exit codes, one-line errors, signals, input
and output files (the same-file check, a byte-order mark, standard output kept
for records), the graceful stop of a run and its exit code."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import io
import json
import os
import shlex
import signal
import stat
import sys
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any, NoReturn

import click

from fanout._journal import CorruptJournal, JournalError
from fanout.executors import Executor

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_OUTPUT = 74  # sysexits EX_IOERR: the output could not be written
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: the reader of standard output went away (``fanout ... | head``): the status a
#: shell shows for ``seq``, ``cat`` or ``grep`` killed by SIGPIPE
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``Error: message`` on stderr (one line) and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def output_errors() -> Iterator[None]:
    """While the output is opened (and, on ``--resume``, read): a file that is not an
    output of this command is a usage error (exit 2), one that cannot be written
    exits 74; one line each."""
    try:
        yield
    except CorruptJournal as exc:
        die(str(exc))
    except JournalError as exc:
        die(f"cannot write output {exc}", EXIT_OUTPUT)


def open_input(path: str, *, what: str = "input", label: str | None = None,
               binary: bool = False) -> IO[Any]:
    """Open an input file for reading, or exit 2 with a one-line error naming it."""
    name = label or path
    try:
        return open(path, "rb" if binary else "r", encoding=None if binary else "utf-8")
    except FileNotFoundError:
        die(f"{name}: no such {what} file")
    except IsADirectoryError:
        die(f"{name}: is a directory, expected a JSONL file")
    except OSError as exc:
        die(f"{name}: cannot read {what} ({exc.strerror})")


def skip_bom(handle: IO[bytes]) -> None:
    """Step over a UTF-8 byte-order mark at the start of ``handle`` (Windows editors
    and Excel write one); line numbers are unchanged."""
    peek = getattr(handle, "peek", None)
    head = peek(3)[:3] if peek is not None else b""
    if head == codecs.BOM_UTF8:
        handle.read(3)


# ------------------------------------------------------- never destroy the input
def _file_identity(path: str, stream: Any) -> tuple[int, int] | None:
    """(device, inode) of the regular file at ``path`` (``"-"``: behind ``stream``),
    or None when there is none: pipes and terminals are never "the same file"."""
    try:
        st = os.fstat(stream.fileno()) if path == "-" else os.stat(path)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_dev, st.st_ino


def refuse_same_file(input_path: str, output: str, summary_json: str | None = None) -> None:
    """Exit 2 before anything is opened for writing when the output (or the
    ``--summary-json`` file) is the input, or the summary is the output: the
    same file by any name, symlink or hard link (same device and inode)."""
    source = _file_identity(input_path, sys.stdin)
    target = _file_identity(output, sys.stdout)
    shown_in = "standard input" if input_path == "-" else input_path
    shown_out = "standard output" if output == "-" else output
    if target is not None and target == source:
        die(f"-o {shown_out} is the input {shown_in} (the same file): writing it would "
            "destroy the input; write the output to another file")
    if summary_json is None:
        return
    summary = _file_identity(summary_json, None)
    if summary is not None and summary == source:
        die(f"--summary-json {summary_json} is the input {shown_in} (the same file): "
            "writing it would destroy the input; write the summary to another file")
    # the output may not exist yet: then the same name is the same file
    same_name = output != "-" and os.path.realpath(summary_json) == os.path.realpath(output)
    if same_name or (summary is not None and summary == target):
        die(f"--summary-json {summary_json} is the output {shown_out} (the same file); "
            "write the summary to another file")


# --------------------------------------------------------------- standard output
def divert_stdout() -> None:
    """Send whatever else is printed to standard output to stderr from now on, for
    the rest of the process, so that standard output carries only the records
    (opened before this call). Descriptor 1 is pointed at stderr, so threads,
    C code and worker processes started later print there too."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        pass  # not a real descriptor (a test runner's stream): the object suffices
    sys.stdout = sys.stderr


def exit_broken_pipe() -> NoReturn:
    """The reader of our output went away (``fanout ... | head``): leave quietly,
    with the status of a Unix filter killed by SIGPIPE. Standard output is
    pointed at /dev/null first, so nothing fails when Python flushes it."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(devnull)
    sys.exit(EXIT_BROKEN_PIPE)


# ------------------------------------------------------------------- stopping
def signal_exit_code(signum: int) -> int:
    """143 after SIGTERM, 130 after Ctrl-C (SIGINT)."""
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


class Signals:
    """Turns SIGTERM into the same path as Ctrl-C (KeyboardInterrupt in the main
    thread) and remembers which one arrived, for the exit code; for the time
    before a run's event loop takes over the signals (``RunStop``)."""

    def __init__(self) -> None:
        self.received: int | None = None

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.received or signal.SIGINT)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            # A second signal while we are winding down: leave at once.
            sys.stderr.write("\ninterrupted again: exiting now\n")
            sys.stderr.flush()
            os._exit(self.exit_code)
        self.received = signum
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[Signals]:
        previous = {
            signum: signal.signal(signum, self._handler)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class RunStop:
    """Why a run stopped early (a signal, or the output refused a write) and the
    event that asks the core for a graceful stop: nothing new starts, calls in
    flight are cancelled, what finished is still handed out."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None
        self.error: JournalError | None = None

    def on_signal(self, signum: int) -> None:
        if self.signum is not None:
            os._exit(signal_exit_code(signum))  # a second signal: leave at once
        self.signum = signum
        self.event.set()

    def on_write_error(self, exc: JournalError) -> None:
        if self.error is None:
            self.error = exc
            self.event.set()

    @property
    def broken_pipe(self) -> bool:
        """The output was a pipe whose reader went away."""
        return self.error is not None and self.error.errno == errno.EPIPE

    @property
    def interrupted(self) -> str | None:
        """The signal's name (``SIGPIPE`` when the reader went away), or None."""
        if self.broken_pipe:
            return "SIGPIPE"
        return signal.Signals(self.signum).name if self.signum is not None else None

    def exit_code(self, *, failures: bool) -> int:
        """74 output not writable; 141 reader gone; 130/143 signal; 1 failures; 0."""
        if self.broken_pipe:
            return EXIT_BROKEN_PIPE
        if self.error is not None:
            return EXIT_OUTPUT
        if self.signum is not None:
            return signal_exit_code(self.signum)
        return EXIT_FAILURES if failures else EXIT_OK

    @contextlib.contextmanager
    def signals_on(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """SIGINT and SIGTERM stop the run on ``loop`` gracefully; a second one exits."""
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, self.on_signal, signum)
                installed.append(signum)
        try:
            yield
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


def resume_command() -> str:
    """The command line that resumes this one: its own arguments plus ``--resume``."""
    args = sys.argv[1:]
    if "--resume" not in args:
        args = [*args, "--resume"]
    return shlex.join(["fanout", *args])


def write_summary_json(path: str, document: dict[str, Any]) -> None:
    """Write a run's ``--summary-json`` document; exit 74 if the file refuses it."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, allow_nan=False)
            fh.write("\n")
    except OSError as exc:
        die(f"{path}: cannot write summary ({exc.strerror})", EXIT_OUTPUT)


def check_output_paths(output: str, summary_json: str | None) -> None:
    """The output's and the summary's folders exist, and the output is not a folder
    (exit 2 with one line otherwise)."""
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


def load_executor(spec: str) -> Executor:
    """``--executor MODULE:NAME``: an executor instance, or a function returning one
    (called with no arguments); one-line error, exit 2."""
    target = load_function(spec, what="MODULE:NAME", example="mypkg.cluster:executor",
                            callable_only=False)
    if not isinstance(target, Executor) and callable(target):
        try:
            target = target()
        except Exception as exc:
            die(f"--executor {spec}: calling it failed: {type(exc).__name__}: {exc}")
    if not isinstance(target, Executor):
        die(f"--executor {spec}: expected a fanout executor (a fanout.Executor instance, or a "
            f"function returning one), got {type(target).__name__}")
    return target


def load_function(spec: str, *, what: str = "MODULE:FUNCTION",
                  example: str = "mypkg.jobs:score", callable_only: bool = True) -> object:
    """Import ``MODULE:FUNCTION`` (current directory importable); one-line error, exit 2."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        die(f"expected {what}, like {example} (got {spec!r})")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        die(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}")
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            where = getattr(module, "__file__", module_name)
            die(f"{where}: module {module_name!r} has no attribute {attr!r}")
    if callable_only and not callable(target):
        die(f"{spec} is not callable (it is a {type(target).__name__})")
    return target
