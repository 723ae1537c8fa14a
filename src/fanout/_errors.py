"""Exceptions fanout raises or records.

    FanoutError                  configuration and infrastructure problems
    ├── ConfigError (ValueError)   a bad argument: names it, its value, the fix
    │   └── UnknownOption (TypeError)  a keyword the API does not take ("did you mean ...?")
    ├── NotPicklableError          process mode got a function or item pickle can't carry
    ├── BatchError                 Results.values() when some items failed; carries .failures
    CallTimeout (TimeoutError)     recorded: a call ran past ``timeout=``
    SlotsExhausted                 recorded: every slot held by a timed-out call still running
    WorkerCrashed                  recorded: the process running a call died
    RemoteError                    recorded: an exception from a worker that could not be pickled
    Interrupted (KeyboardInterrupt) raised by the sync API on Ctrl-C; carries finished results

Per-call failures are *recorded* in ``Result.error``; only configuration errors,
infrastructure failures or ``errors="raise"`` raise.
"""

from __future__ import annotations

from typing import Any


class FanoutError(Exception):
    """Base of the errors fanout itself raises."""


class ConfigError(FanoutError, ValueError):
    """An argument is invalid; the message names it, its value and the fix."""


class UnknownOption(ConfigError, TypeError):
    """A keyword the API does not take (a ``TypeError``, as Python would raise)."""


class NotPicklableError(ConfigError):
    """Process mode needs picklable functions and items."""


class CallTimeout(TimeoutError):
    """A call ran longer than ``timeout`` seconds."""

    def __init__(self, timeout: float, detail: str = "") -> None:
        self.timeout = timeout
        super().__init__(f"call timed out after {timeout:g}s{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.timeout,))


class BatchError(FanoutError):
    """Some items of a batch failed (raised by ``Results.values()``).

    ``failures`` holds the failed ``Result``s, in input order; the first one's
    error is also this exception's ``__cause__``.
    """

    def __init__(self, failures: list[Any], total: int) -> None:
        self.failures = failures
        first = failures[0]
        error = first.error
        super().__init__(
            f"{len(failures)} of {total} items failed; the first, item {first.index}: "
            f"{type(error).__name__}: {error} (see .failures)"
        )


class SlotsExhausted(FanoutError):
    """Recorded for items that could not start: every concurrency slot was held,
    for longer than the timeout, by a call that timed out and is still running
    (a thread cannot be stopped)."""


class WorkerCrashed(FanoutError):
    """The worker process running the call died (segfault, ``os._exit``, killed)."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        self.exitcode = exitcode
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.exitcode))


class RemoteError(FanoutError):
    """An exception raised in a worker process that could not be sent back as is."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        self.type_name = type_name
        self.traceback = traceback
        super().__init__(f"{type_name}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        msg = str(self).split(": ", 1)[-1]
        return (type(self), (self.type_name, msg, self.traceback))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or a stop request) ended the batch early.

    ``results`` holds every result that had finished, in input order when the
    batch was ordered.
    """

    def __init__(self, results: list[Any], signum: int | None = None) -> None:
        self.results = results
        self.signum = signum
        super().__init__(f"interrupted with {len(results)} results finished")
