"""Ctrl-C in the sync API: raise ``fanout.Interrupted``, and if nothing catches it,
end the program the way Ctrl-C ends any Python program.

CPython ends a program with the Ctrl-C status (it dies by SIGINT: 130 in a
shell) only when the uncaught exception is exactly ``KeyboardInterrupt``; a
subclass such as ``fanout.Interrupted`` (which carries the finished results)
would give status 1, and a shell loop or a supervisor would not see that the
program was interrupted. So the first time the sync API raises it from the
main thread of a non-interactive program, it chains a ``sys.excepthook`` (the
documented hook for uncaught exceptions): the traceback is printed as usual by
the previous hook, then, for an uncaught ``Interrupted`` only, the program
flushes its output and logging and re-raises SIGINT with its default action,
as CPython itself does for ``KeyboardInterrupt`` (``exit_sigint``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import TracebackType
from typing import Any, NoReturn

from fanout._errors import Interrupted

_lock = threading.Lock()
_installed = False


def raise_interrupted(results: list[Any]) -> NoReturn:
    """Raise ``Interrupted(results)``; uncaught, it ends the program as Ctrl-C does."""
    _install()
    raise Interrupted(results) from None


def _install() -> None:
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return
    if sys.flags.interactive or hasattr(sys, "ps1"):
        return  # a REPL goes on after an uncaught exception: leave it alone
    with _lock:
        if _installed:
            return
        _installed = True
        previous = sys.excepthook

        def hook(
            kind: type[BaseException], exc: BaseException, tb: TracebackType | None
        ) -> None:
            previous(kind, exc, tb)
            if issubclass(kind, Interrupted):
                _die_by_sigint()

        sys.excepthook = hook


def _die_by_sigint() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    os._exit(130)  # not reached where SIGINT's default action is to end the process
