"""The warm pool of process-mode workers, shared by every run of the program.

Workers outlive a run, so the next ``map`` pays no start-up: a run borrows a
worker for each batch and gives it back. A worker that stays idle for
``FANOUT_PROCESS_IDLE`` seconds (300 by default) exits by itself, so an idle
program keeps neither processes nor threads of ours; the rest end with the
interpreter.

A worker starts one of two ways, neither importing the program's ``__main__``:

- forked from this process when it runs a single thread (Linux), as
  ``ProcessPoolExecutor`` does there: a millisecond or two;
- otherwise a fresh ``python -c`` that imports only the worker module (forking
  a process that runs threads can deadlock the child): 50-100 ms.

Only the parent and the worker hold the two ends of a worker's socket, so a
worker sees the parent die (and the parent sees the worker die) at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable

from fanout._errors import FanoutError
from fanout.executors import _worker

#: seconds a worker waits for work before it exits (tests lower it)
IDLE_SECONDS = float(os.environ.get("FANOUT_PROCESS_IDLE", "300"))
#: seconds a killed worker gets to exit on SIGTERM before SIGKILL
KILL_GRACE = 1.0

_BUFFER = 1 << 16


class Worker:
    """One worker process, seen from the parent: its pid and our end of its socket."""

    def __init__(self, pid: int, sock: socket.socket, popen: subprocess.Popen[bytes] | None,
                 idle: float) -> None:
        self.pid = pid
        self.sock = sock
        self.popen = popen
        self.idle = idle
        self.ready = False
        self.fn_key: bytes | None = None
        self.last_used = time.monotonic()
        self._buf = bytearray(_BUFFER)

    async def send(self, loop: asyncio.AbstractEventLoop, kind: int, body: bytes) -> None:
        await loop.sock_sendall(self.sock, _worker.HEADER.pack(len(body), kind) + body)

    async def recv(self, loop: asyncio.AbstractEventLoop) -> tuple[int, memoryview]:
        """The next message: its kind and body. EOFError when the worker died."""
        buf = self._buf
        have = 0
        size = _worker.HEADER.size
        while have < size:
            got = await loop.sock_recv_into(self.sock, memoryview(buf)[have:])
            if not got:
                raise EOFError
            have += got
        length, kind = _worker.HEADER.unpack_from(buf)
        end = size + length
        if end > len(buf):
            big = bytearray(end)
            big[:have] = buf[:have]
            buf = big
        view = memoryview(buf)
        while have < end:
            got = await loop.sock_recv_into(self.sock, view[have:end])
            if not got:
                raise EOFError
            have += got
        return kind, view[size:end]

    def exit_code(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for the process to end (SIGKILL after that);
        its exit code (negative: the signal that ended it)."""
        if self.popen is not None:
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                return self.popen.wait()
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG if timeout else 0)
            except ChildProcessError:  # reaped already
                return None
            if pid:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= deadline:
                self.signal(signal.SIGKILL)
                timeout = 0
                continue
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def signal(self, signum: int) -> None:
        # Safe from pid reuse: only we reap this child, after it ended.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def close(self) -> None:
        self.sock.close()


class Pool:
    """Idle workers, and every live one (to close them in forked children and at exit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._live: set[Worker] = set()
        self._exit_hook = False

    def take(self, fn_key: bytes) -> Worker:
        """An idle worker, one that already holds this function if possible;
        a new one (not ready yet) when none is idle."""
        now = time.monotonic()
        stale: list[Worker] = []
        worker: Worker | None = None
        with self._lock:
            idle = self._idle
            # Workers about to retire themselves are not worth a round trip.
            while idle and now - idle[0].last_used > idle[0].idle * 0.9:
                stale.append(idle.pop(0))
            for i in range(len(idle) - 1, -1, -1):
                if idle[i].fn_key == fn_key:
                    worker = idle.pop(i)
                    break
            else:
                if idle:
                    worker = idle.pop()
        for old in stale:
            self.discard(old)
        return worker if worker is not None else self.spawn()

    def give_back(self, worker: Worker) -> None:
        worker.last_used = time.monotonic()
        with self._lock:
            self._idle.append(worker)

    def discard(self, worker: Worker) -> int | None:
        """Forget a worker that ended or must end; its exit code."""
        with self._lock:
            self._live.discard(worker)
        worker.close()  # an idle worker exits when it sees its socket closed
        return worker.exit_code(KILL_GRACE)

    def kill(self, worker: Worker, on_exit: Callable[[], None] | None = None) -> None:
        """Stop the call a worker runs: SIGTERM now, SIGKILL after the grace period.
        Returns at once; the worker is never used again; ``on_exit`` is called
        (from another thread) once it has exited."""
        with self._lock:
            self._live.discard(worker)
        worker.signal(signal.SIGTERM)

        def finish() -> None:
            worker.exit_code(KILL_GRACE)
            worker.close()
            if on_exit is not None:
                on_exit()

        threading.Thread(target=finish, name="fanout-kill", daemon=True).start()

    def spawn(self) -> Worker:
        ours, theirs = socket.socketpair()
        idle = IDLE_SECONDS
        try:
            if _single_threaded():
                worker = Worker(self._fork(ours, theirs, idle), ours, None, idle)
            else:
                pid, popen = _launch(theirs, idle)
                worker = Worker(pid, ours, popen, idle)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        with self._lock:
            self._live.add(worker)
            if not self._exit_hook:
                self._exit_hook = True
                atexit.register(self.shutdown)
        return worker

    def _fork(self, ours: socket.socket, theirs: socket.socket, idle: float) -> int:
        for stream in (sys.stdout, sys.stderr):  # or the child would print them again
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            ours.close()  # and the other workers' sockets: see forget()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            _worker.serve(theirs.detach(), idle)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def idle_count(self) -> int:
        """Workers idle now."""
        with self._lock:
            return len(self._idle)

    def prestart(self, n: int) -> None:
        """Fork workers now, while this thread is the only one, until ``n`` are idle."""
        while len(self._idle) < n and _single_threaded():
            self.give_back(self.spawn())

    def shutdown(self) -> None:
        """Close every worker and wait (briefly) for them to exit: at interpreter exit."""
        with self._lock:
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
        for worker in workers:
            worker.close()
        for worker in workers:
            worker.exit_code(KILL_GRACE)

    def forget(self) -> None:
        """In a child forked from this process (by us or by the program): the
        workers are the parent's; close our copies of their sockets, so that only
        the parent holds them (a worker sees the parent die), and start afresh."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        for worker in self._live:
            worker.sock.close()
        self._live = set()
        self._idle = []


def _launch(theirs: socket.socket, idle: float) -> tuple[int, subprocess.Popen[bytes]]:
    if not sys.executable:
        raise FanoutError("process mode cannot start a worker: sys.executable is not known")
    fd = theirs.fileno()
    popen = subprocess.Popen(
        [sys.executable, "-c", _worker.SPAWN_CODE, str(fd), repr(idle), repr(sys.path)],
        pass_fds=[fd], stdin=subprocess.DEVNULL,
    )
    return popen.pid, popen


def _single_threaded() -> bool:
    """Whether forking is safe: Linux, and this process runs one thread, counting
    threads that Python does not know about (as CPython's own fork warning does)."""
    if sys.platform != "linux":
        return False
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[17]) == 1
    except (OSError, IndexError, ValueError):
        return threading.active_count() == 1


POOL = Pool()
os.register_at_fork(after_in_child=POOL.forget)
