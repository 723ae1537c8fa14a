"""Small loopback servers for the ``fanout http`` tests: a real forward proxy that records
what it saw, and an API stub that answers with an ``x-request-id`` header."""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

# hop-by-hop headers (RFC 9110 7.6.1) and what a proxy must not pass on
_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection",
                  "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
_HOP_BACK = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                       "content-encoding"})


class LoopbackServer:
    """An aiohttp low-level server (every request, no routing: CONNECT too) on a free
    127.0.0.1 port, in a thread of its own."""

    def __init__(self) -> None:
        self.url = ""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.ServerRunner | None = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raise NotImplementedError

    async def _start(self) -> None:
        self._runner = web.ServerRunner(web.Server(self.handle), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def __enter__(self) -> Any:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class ForwardProxy(LoopbackServer):
    """An HTTP forward proxy: answers absolute-form requests (``GET http://host/path``)
    by sending them on, and records each request it saw (``seen``: method, target,
    headers, ``Proxy-Authorization`` included). With ``credentials``, a request
    without them gets 407. CONNECT (for https targets) is refused with 407/403 after
    being recorded: enough to see what a client sends a proxy for a tunnel. A ``leaky``
    proxy passes ``Proxy-Authorization`` on to the server (a badly written proxy)."""

    def __init__(self, name: str = "proxy", credentials: tuple[str, str] | None = None,
                 *, leaky: bool = False) -> None:
        super().__init__()
        self.name = name
        self.leaky = leaky
        self.expected_auth = None if credentials is None else "Basic " + base64.b64encode(
            f"{credentials[0]}:{credentials[1]}".encode()).decode()
        self.seen: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        await super()._stop()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.seen.append({"method": request.method, "target": request.raw_path,
                          "headers": dict(request.headers)})
        if self.expected_auth is not None and (
            request.headers.get("Proxy-Authorization") != self.expected_auth
        ):
            return web.Response(status=407, text="proxy credentials needed\n",
                                headers={"Proxy-Authenticate": 'Basic realm="test"'})
        if request.method == "CONNECT":
            return web.Response(status=403, text="no tunnels here\n")
        if not request.raw_path.startswith("http://"):
            return web.Response(status=400, text="not a proxy request (origin-form)\n")
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP
                   or (self.leaky and k.lower() == "proxy-authorization")}
        headers["Via"] = f"1.1 {self.name}"
        body = await request.read()
        async with self._session.request(request.method, request.raw_path, headers=headers,
                                         data=body or None, allow_redirects=False) as answer:
            payload = await answer.read()
            back = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BACK}
            back["X-Proxied-By"] = self.name
            return web.Response(status=answer.status, body=payload, headers=back)


class RequestIdServer(LoopbackServer):
    """An API stub: every request is answered ``{"n": N, "path": ...}`` with
    ``x-request-id: req_N``; ``seen`` keeps each request's headers."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str]] = []
        self._counter = itertools.count(1)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        n = next(self._counter)
        await request.read()
        return web.json_response({"n": n, "path": request.path},
                                 headers={"x-request-id": f"req_{n}"})
