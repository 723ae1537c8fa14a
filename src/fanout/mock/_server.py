"""Running the mock API: in a background thread (tests), in a child process (benchmarks),
or in the foreground (``fanout mock-server``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self, Unpack

from aiohttp import web

from fanout._loop import new_event_loop
from fanout.mock._app import build_app
from fanout.mock._config import (
    API_KEY_VARIABLE,
    MockConfig,
    MockSettings,
    cli_arguments,
    make_config,
)

_BACKLOG = 2048
_SHUTDOWN_TIMEOUT = 0.5
_START_TIMEOUT = 30.0
# loopback only: never let a proxy from the environment see these requests
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def stats(url: str, *, window: float = 1.0) -> dict[str, Any]:
    """The ``/stats`` of the mock server at base ``url`` (see the schema in fanout.mock)."""
    query = "" if window == 1.0 else f"?window={window!r}"
    with _OPENER.open(f"{url}/stats{query}", timeout=10) as response:
        payload: dict[str, Any] = json.load(response)
    return payload


def reset_stats(url: str) -> None:
    """Clear the counters of the mock server at base ``url`` (and its ``/flaky`` attempts)."""
    request = urllib.request.Request(f"{url}/stats/reset", data=b"", method="POST")
    with _OPENER.open(request, timeout=10):
        pass


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start(config: MockConfig, host: str, port: int) -> tuple[web.AppRunner, str]:
    sock = _bind(host, port)
    runner = web.AppRunner(
        build_app(config),
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=_SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock, backlog=_BACKLOG).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return runner, _url(host, sock.getsockname()[1])


def serve_forever(
    config: MockConfig, host: str, port: int, on_ready: Callable[[str], None]
) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; ``on_ready(url)`` once listening.

    Returns the signal that stopped it, once the socket is closed.
    """
    received = signal.SIGINT

    async def main() -> None:
        nonlocal received
        runner, url = await _start(config, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            nonlocal received
            received = signal.Signals(signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            # on Windows there are no signal handlers: Ctrl-C raises KeyboardInterrupt instead
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal, signum)
        try:
            on_ready(url)
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=new_event_loop) as r:
        r.run(main())
    return received


class MockServer:
    """The mock API server, run in a background thread with its own event loop.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with MockServer(latency=0.05, rate_limit="100/s", seed=1) as server:
            requests.get(f"{server.url}/todos/1")
            server.stats()["total"]

    ``port=0`` picks a free port. The settings (all keyword arguments, see
    :class:`~fanout.mock.MockSettings` and the docs of :mod:`fanout.mock`): ``latency``,
    ``jitter``, ``capacity``; faults ``error_rate``, ``unavailable_rate``, ``throttle_rate``,
    ``throttle_retry_after``, ``reset_rate``, ``max_faults``, ``seed``; limits
    ``rate_limit`` (``"100/s"``, ``"600/min"``, ``"5/h"`` or requests per second),
    ``ratelimit_headers``, ``rpm``, ``tpm``, ``bucket``, ``settle_tokens``,
    ``limit_schedule``; and ``api_key``. Durations are seconds or strings like ``"50ms"``.
    For load tests, run it in its own process with :meth:`spawn` instead, so that it
    doesn't share the GIL with the client being measured.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, **settings: Unpack[MockSettings]
    ) -> None:
        self.config = make_config(**settings)
        self.host = host
        self._requested_port = port
        self._url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``, once started."""
        if self._url is None:
            raise RuntimeError("the mock server is not running; call start() or use `with`")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on, once started."""
        return int(self.url.rsplit(":", 1)[1])

    def start(self) -> Self:
        """Start serving; returns once the socket listens. Raises OSError if it can't bind."""
        if self._thread is not None:
            raise RuntimeError("the mock server is already running")
        ready: queue.Queue[str | BaseException] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fanout-mock-server", daemon=True
        )
        self._thread.start()
        outcome = ready.get(timeout=_START_TIMEOUT)
        if isinstance(outcome, BaseException):
            self._thread.join()
            self._thread = None
            raise outcome
        self._url = outcome
        return self

    def _run(self, ready: queue.Queue[str | BaseException]) -> None:
        loop = new_event_loop()
        try:
            try:
                runner, url = loop.run_until_complete(
                    _start(self.config, self.host, self._requested_port)
                )
            except BaseException as exc:
                ready.put(exc)
                return
            self._loop = loop
            ready.put(url)
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread to end (in-flight requests are cut)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = self._url = None

    def stats(self, *, window: float = 1.0) -> dict[str, Any]:
        """``GET /stats``: what the server saw (schema in the fanout.mock docs)."""
        return stats(self.url, window=window)

    def reset_stats(self) -> None:
        """``POST /stats/reset``: clear the counters and the ``/flaky`` attempts."""
        reset_stats(self.url)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def spawn(
        host: str = "127.0.0.1", port: int = 0, **settings: Unpack[MockSettings]
    ) -> MockProcess:
        """Start ``python -m fanout mock-server`` in a child process; returns once it listens."""
        return MockProcess(make_config(**settings), host=host, port=port)


class MockProcess:
    """A mock server running in a child process (see :meth:`MockServer.spawn`)."""

    def __init__(self, config: MockConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        argv = [sys.executable, "-m", "fanout", "mock-server", "--host", host, "--port", str(port)]
        argv += cli_arguments(config)
        env = None
        if config.api_key is not None:
            # in the environment, not on a command line that any local user can read
            env = {**os.environ, API_KEY_VARIABLE: config.api_key}
        self.config = config
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        self.url = self._read_url()

    def _read_url(self) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=_START_TIMEOUT).strip()
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                f"the mock server (pid {self.pid}) printed no URL within {_START_TIMEOUT:g} s"
            ) from None
        if not line.startswith("http://"):
            code = self.process.wait()
            raise RuntimeError(
                f"the mock server exited with code {code} before printing its URL "
                "(its error is on stderr above)"
            )
        return line

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def stats(self, *, window: float = 1.0) -> dict[str, Any]:
        """``GET /stats`` of the child server."""
        return stats(self.url, window=window)

    def reset_stats(self) -> None:
        """``POST /stats/reset`` on the child server."""
        reset_stats(self.url)

    def stop(self, timeout: float = 10.0) -> int:
        """Send SIGTERM to the child (its own pid), wait for it, kill it if it hangs.

        Returns its exit code: 143 when it stopped on the SIGTERM.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def api(url: str | None = None, **settings: Any) -> Iterator[str]:
    """The base URL given (a real API), or a mock server started for the block.

    ``settings`` are ``MockServer``'s (latency, rate_limit, ...), used only when
    no ``url`` is given: ``with api(args.url, latency=0.05) as base: ...``.
    """
    if url:
        yield url.rstrip("/")
        return
    with MockServer(**settings) as server:
        yield server.url
