"""The code a process-mode worker runs, and the framing both ends of its socket use.

A worker is generic: the parent sends it a function (``FUNCTION``, kept until
another one comes; answered ``LOADED`` or ``LOAD_ERROR``), then batches of
items (``JOB``), and gets one ``RESULT`` per batch. It starts with ``READY``,
and after ``idle`` seconds without work it says ``BYE`` and exits, so an idle
pool shuts itself down. The worker never imports the parent's ``__main__``:
functions defined there arrive pickled by value (cloudpickle).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from typing import Any

from fanout._errors import RemoteError
from fanout.executors._calls import Outcome, SyncRunner, fail_unsendable

PROTOCOL = pickle.HIGHEST_PROTOCOL
HEADER = struct.Struct("!QB")  # body length, message kind

# Parent -> worker
FUNCTION = 1  # pickle of (sys.path, pickled function)
JOB = 2  # pickled list of items
# Worker -> parent
READY = 3  # empty
RESULT = 4  # pickled Outcome
LOAD_ERROR = 5  # utf-8 text: the function could not be loaded
BYE = 6  # empty: idle too long, exiting without reading anything more
LOADED = 7  # empty: the function is ready

# Started by the parent with ``python -c`` (never a script of the user's):
# argv = [fd, idle seconds, sys.path as repr]
SPAWN_CODE = (
    "import sys, ast; sys.path[:] = ast.literal_eval(sys.argv[3]); "
    "from fanout.executors._worker import serve; "
    "serve(int(sys.argv[1]), float(sys.argv[2]))"
)


def send(sock: socket.socket, kind: int, body: bytes = b"") -> None:
    """Send one message, blocking."""
    sock.sendall(HEADER.pack(len(body), kind) + body)


def _recv_exactly(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    while view:
        got = sock.recv_into(view)
        if not got:
            raise EOFError
        view = view[got:]
    return buf


def serve(fd: int, idle: float) -> None:
    """Serve the parent on socket ``fd`` until it goes away or ``idle`` seconds pass
    with nothing to do."""
    # The parent owns Ctrl-C and SIGTERM: it stops or kills workers itself. A
    # forked worker must not run handlers it inherited from the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # not the main thread: no wakeup fd was set here
        pass
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    _watch_parent(fd)
    send(sock, READY)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    wait_ms = None if idle == float("inf") else max(0, int(idle * 1000))
    runner: SyncRunner | None = None
    while True:
        if not poller.poll(wait_ms):
            send(sock, BYE)
            return
        try:
            length, kind = HEADER.unpack(_recv_exactly(sock, HEADER.size))
            body = _recv_exactly(sock, length)
        except (EOFError, OSError):
            return
        if kind == FUNCTION:
            if runner is not None:
                runner.close()
            runner = None
            try:
                path, fn_bytes = pickle.loads(body)
                if sys.path != path:
                    sys.path[:] = path
                runner = SyncRunner(pickle.loads(fn_bytes))
            except Exception as exc:
                send(sock, LOAD_ERROR, f"{type(exc).__name__}: {exc}".encode())
            else:
                send(sock, LOADED)
        elif runner is None:
            send(sock, LOAD_ERROR, b"no function was sent")
        else:
            send(sock, RESULT, dump(runner.run_batch(pickle.loads(body))))


def _watch_parent(fd: int) -> None:
    """Exit as soon as the parent goes away, even in the middle of a long call."""
    flags = getattr(select, "POLLRDHUP", 0) | select.POLLHUP

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, flags)
        while True:
            for _, event in poller.poll():
                if event & flags:
                    os._exit(1)

    threading.Thread(target=watch, name="fanout-parent-watch", daemon=True).start()


def _pickled(value: Any) -> bytes:
    """Plain pickle, or cloudpickle for what only it can carry (a class or a
    function the parent sent by value)."""
    try:
        return pickle.dumps(value, PROTOCOL)
    except Exception:
        import cloudpickle

        data: bytes = cloudpickle.dumps(value, PROTOCOL)
        return data


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives a pickle round trip, else a RemoteError."""
    try:
        pickle.loads(_pickled(exc))
    except Exception:
        tb = "".join(traceback.format_exception(exc))
        return RemoteError(type(exc).__qualname__, str(exc), tb)
    return exc


def dump(outcome: Outcome) -> bytes:
    """A batch's outcome, pickled; a value that cannot travel fails only its item."""
    values, elapsed, errors = outcome
    if errors:
        errors = {i: _portable(exc) for i, exc in errors.items()}
    try:
        return _pickled((values, elapsed, errors))
    except Exception:
        pass
    errors = fail_unsendable(values, errors, _pickled, "the worker process")
    return _pickled((values, elapsed, errors))
