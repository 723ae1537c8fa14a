"""The code a process-mode worker runs (kept small: it is preloaded by the fork server)."""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import traceback
from multiprocessing.connection import Connection

from fanout._errors import RemoteError
from fanout.executors._calls import Outcome, SyncRunner

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def main(conn: Connection, fn_bytes: bytes) -> None:
    """Serve batches from the parent until it closes the connection."""
    # The parent owns Ctrl-C: it cancels and replaces workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(conn)
    try:
        fn = pickle.loads(fn_bytes)
    except Exception as exc:
        conn.send_bytes(pickle.dumps(("init_error", f"{type(exc).__name__}: {exc}")))
        return
    conn.send_bytes(pickle.dumps(("ready", None)))
    runner = SyncRunner(fn)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        items = pickle.loads(data)
        conn.send_bytes(_dump(runner.run_batch(items)))


def _watch_parent(conn: Connection) -> None:
    """Exit as soon as the parent goes away, even in the middle of a long call."""
    poll_flag = getattr(select, "POLLRDHUP", 0) | select.POLLHUP
    fd = conn.fileno()

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, poll_flag)
        while True:
            for _, event in poller.poll():
                if event & poll_flag:
                    os._exit(1)

    threading.Thread(target=watch, name="fanout-parent-watch", daemon=True).start()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives a pickle round trip, else a RemoteError."""
    try:
        pickle.loads(pickle.dumps(exc, _PROTOCOL))
    except Exception:
        tb = "".join(traceback.format_exception(exc))
        return RemoteError(type(exc).__qualname__, str(exc), tb)
    return exc


def _dump(outcome: Outcome) -> bytes:
    values, elapsed, errors = outcome
    if errors:
        errors = {i: _portable(exc) for i, exc in errors.items()}
    try:
        return pickle.dumps(("ok", (values, elapsed, errors)), _PROTOCOL)
    except Exception:
        pass
    # Some return value does not pickle: record just those items as failed.
    errors = dict(errors or {})
    for i, value in enumerate(values):
        if i in errors:
            continue
        try:
            pickle.dumps(value, _PROTOCOL)
        except Exception as exc:
            errors[i] = RemoteError(
                "PicklingError",
                f"the return value of type {type(value).__qualname__} cannot be sent back from "
                f"the worker process ({exc}); return plain data, or use mode='thread'",
            )
            values[i] = None
    return pickle.dumps(("ok", (values, elapsed, errors)), _PROTOCOL)
