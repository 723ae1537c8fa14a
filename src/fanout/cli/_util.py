"""What every fanout command shares: exit codes, one-line errors, signals."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any, NoReturn

import click

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_OUTPUT = 74  # sysexits EX_IOERR: the output could not be written
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``Error: message`` on stderr (one line) and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


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


def signal_exit_code(signum: int) -> int:
    """143 after SIGTERM, 130 after Ctrl-C (SIGINT)."""
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


class Signals:
    """Turns SIGTERM into the same path as Ctrl-C (KeyboardInterrupt in the main
    thread) and remembers which one arrived, for the exit code."""

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
            import os

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


def load_function(spec: str) -> object:
    """Import ``MODULE:FUNCTION`` (current directory importable); one-line error, exit 2."""
    import importlib
    import os

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        die(f"expected MODULE:FUNCTION, like mypkg.jobs:score (got {spec!r})")
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
    if not callable(target):
        die(f"{spec} is not callable (it is a {type(target).__name__})")
    return target
