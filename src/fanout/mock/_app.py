"""The mock API as an ``aiohttp.web`` application: endpoints, injected faults, and ``/stats``.

Every endpoint except ``/stats`` goes through :meth:`_Faults.wrap`, which, in order: counts the
request, applies the rate limit (429), maybe resets the connection, sleeps the latency, maybe
answers 500, and finally calls the endpoint. Handlers stay small: this server is the load
target of benchmarks doing thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import socket
import struct
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fanout.mock._chat import ChatRequestError, reply
from fanout.mock._config import MockConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TODO_COUNT = 200
_MAX_WAIT = 3600.0
_NO_BODY_STATUSES = frozenset({204, 304})
_LINGER_RESET = struct.pack("ii", 1, 0)
_WORDS = (
    "delectus",
    "aut",
    "autem",
    "quis",
    "ut",
    "nam",
    "facilis",
    "et",
    "officia",
    "qui",
    "fugiat",
    "veniam",
    "illo",
    "est",
    "molestiae",
    "perspiciatis",
    "ipsa",
    "laboriosam",
    "mollitia",
    "enim",
    "quasi",
    "adipisci",
    "quia",
    "provident",
    "illum",
    "ullam",
    "ratione",
    "sunt",
    "atque",
)


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _error(
    status: int, message: str, kind: str, code: str | None = None, param: str | None = None
) -> web.Response:
    """An OpenAI-style error body."""
    return _json(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status
    )


def _todo(todo_id: int) -> dict[str, Any]:
    """A jsonplaceholder-shaped todo, the same for the same id on every run."""
    rng = random.Random(todo_id)
    return {
        "userId": (todo_id - 1) // 20 + 1,
        "id": todo_id,
        "title": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))),
        "completed": rng.random() < 0.45,
    }


def max_in_window(starts: array[float], window: float) -> int:
    """The largest number of ``starts`` (sorted) inside any half-open window of ``window`` s."""
    best = 0
    left = 0
    for right, start in enumerate(starts):
        while start - starts[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


class _Stats:
    """What the server saw since start or the last reset; read through ``GET /stats``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started_at = time.time()
        self.started = time.monotonic()
        self.total = 0
        self.by_id: dict[str, int] = {}
        self.by_id_ok: dict[str, int] = {}
        self.per_second: dict[int, int] = {}
        self.by_status: dict[int, int] = {}
        self.resets = 0
        self.rate_limited = 0
        self.errors_injected = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.starts: array[float] = array("d")
        self.flaky: dict[str, int] = {}

    def snapshot(self, window: float, config: MockConfig) -> dict[str, Any]:
        limit = config.rate_limit
        in_1s = max_in_window(self.starts, 1.0)
        return {
            "started_at": self.started_at,
            "uptime": time.monotonic() - self.started,
            "total": self.total,
            "by_id": self.by_id,
            "by_id_ok": self.by_id_ok,
            "per_second": {str(second): n for second, n in sorted(self.per_second.items())},
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "resets": self.resets,
            "rate_limited": self.rate_limited,
            "errors_injected": self.errors_injected,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_in_1s": in_1s,
            "window": window,
            "max_in_window": in_1s if window == 1.0 else max_in_window(self.starts, window),
            "config": {
                "latency": config.latency,
                "jitter": config.jitter,
                "error_rate": config.error_rate,
                "reset_rate": config.reset_rate,
                "rate_limit": list(limit) if limit else None,
                "seed": config.seed,
            },
        }


class _SlidingWindowLimit:
    """At most ``count`` requests accepted in any window of ``period`` seconds (a sliding log).

    Stricter than a token bucket, whose full bucket plus refill lets up to twice the count
    through one window: here a client is refused exactly when it breaks the stated limit.
    """

    def __init__(self, count: int, period: float) -> None:
        self.period = period
        self.accepted: deque[float] = deque(maxlen=count)

    def retry_after(self, now: float) -> float:
        """0.0 if a request arriving ``now`` is accepted (and records it), else seconds to wait."""
        accepted = self.accepted
        if len(accepted) == accepted.maxlen:
            wait = accepted[0] + self.period - now
            if wait > 0:
                return wait
        accepted.append(now)
        return 0.0


def _request_id(request: web.Request, body: bytes | None) -> str:
    """The id a request is counted under in ``/stats``; see the module docs of fanout.mock."""
    header = request.headers.get("X-Request-Id")
    if header is not None:
        return header
    query_id = request.query.get("id")
    if query_id is not None:
        return query_id
    if body:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "id" in payload:
            value = payload["id"]
            return value if isinstance(value, str) else json.dumps(value)
    return request.path


def _abort_with_reset(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # linger 0 makes close() send RST: the client sees a real connection reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Faults:
    """Counting, limits and injected faults around every endpoint but ``/stats``."""

    def __init__(self, config: MockConfig, stats: _Stats) -> None:
        self.config = config
        self.stats = stats
        self.rng = random.Random(config.seed)
        self.limit = _SlidingWindowLimit(*config.rate_limit) if config.rate_limit else None

    def wrap(self, handler: Handler) -> Handler:
        config = self.config
        stats = self.stats
        rng = self.rng
        limit = self.limit
        latency = config.latency
        jitter = config.jitter
        error_rate = config.error_rate
        reset_rate = config.reset_rate

        async def faulty(request: web.Request) -> web.StreamResponse:
            now = time.monotonic()
            elapsed = now - stats.started
            body = None
            if request.body_exists and request.content_type == "application/json":
                body = await request.read()
            key = _request_id(request, body)
            stats.total += 1
            stats.by_id[key] = stats.by_id.get(key, 0) + 1
            second = int(elapsed)
            stats.per_second[second] = stats.per_second.get(second, 0) + 1
            stats.starts.append(elapsed)
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            status: int | None = None
            try:
                if limit is not None:
                    wait = limit.retry_after(now)
                    if wait > 0:
                        stats.rate_limited += 1
                        response = _error(
                            429,
                            f"Rate limit reached: {limit.accepted.maxlen} requests per "
                            f"{limit.period:g} s. Please try again in {wait:.3f}s.",
                            "requests",
                            "rate_limit_exceeded",
                        )
                        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                        status = 429
                        return response
                if reset_rate and rng.random() < reset_rate:
                    stats.resets += 1
                    _abort_with_reset(request)
                    # nothing can be sent any more; aiohttp drops this response
                    return web.Response(status=500)
                if latency or jitter:
                    delay = latency + rng.uniform(-jitter, jitter) if jitter else latency
                    if delay > 0:
                        await asyncio.sleep(delay)
                if error_rate and rng.random() < error_rate:
                    stats.errors_injected += 1
                    status = 500
                    return _error(500, "The server had an error (injected).", "server_error")
                answer = await handler(request)
                status = answer.status
                return answer
            finally:
                stats.in_flight -= 1
                if status is not None:
                    stats.by_status[status] = stats.by_status.get(status, 0) + 1
                    if 200 <= status < 300:
                        stats.by_id_ok[key] = stats.by_id_ok.get(key, 0) + 1

        return faulty


def _retry_after_headers(request: web.Request) -> dict[str, str]:
    """``Retry-After`` as asked by ``?retry_after=N|none`` and ``?retry_after_date=1``."""
    value = request.query.get("retry_after", "1")
    if value == "none":
        return {}
    seconds = float(value)
    if not (0 <= seconds <= _MAX_WAIT):
        raise ValueError(value)
    if request.query.get("retry_after_date") in ("1", "true", "yes"):
        return {"Retry-After": email.utils.formatdate(time.time() + seconds, usegmt=True)}
    return {"Retry-After": value}


def _status_response(status: int, request: web.Request, payload: dict[str, Any]) -> web.Response:
    headers = _retry_after_headers(request) if status in (429, 503) else None
    if status in _NO_BODY_STATUSES:
        return web.Response(status=status, headers=headers)
    return _json(payload, status, headers)


def _seconds(request: web.Request) -> float | None:
    try:
        seconds = float(request.match_info["seconds"])
    except ValueError:
        return None
    return seconds if 0 <= seconds <= _MAX_WAIT else None


def build_app(config: MockConfig) -> web.Application:
    """The mock API application for ``config``."""
    stats = _Stats()
    faults = _Faults(config, stats)
    todos = {i: json.dumps(_todo(i)).encode() for i in range(1, TODO_COUNT + 1)}
    completions = 0

    async def index(request: web.Request) -> web.StreamResponse:
        return _json(
            {
                "name": "fanout mock API",
                "endpoints": [
                    "/todos/{id}",
                    "/echo",
                    "/delay/{seconds}",
                    "/trickle/{seconds}",
                    "/status/{code}",
                    "/flaky/{key}",
                    "/v1/chat/completions",
                    "/stats",
                    "/stats/reset",
                ],
            }
        )

    async def todo(request: web.Request) -> web.StreamResponse:
        raw = request.match_info["id"]
        body = todos.get(int(raw)) if raw.isdigit() else None
        if body is None:
            return _json({"error": f"todo {raw!r} not found; ids are 1..{TODO_COUNT}"}, 404)
        return web.Response(body=body, content_type="application/json")

    async def echo(request: web.Request) -> web.StreamResponse:
        query: dict[str, str | list[str]] = {}
        for name in request.query:
            values = request.query.getall(name)
            query[name] = values[0] if len(values) == 1 else values
        payload: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": query,
            "headers": dict(request.headers),
        }
        if request.body_exists:
            raw = await request.read()
            try:
                payload["json"] = json.loads(raw)
            except ValueError:
                payload["text"] = raw.decode("utf-8", "replace")
        return _json(payload)

    async def delay(request: web.Request) -> web.StreamResponse:
        seconds = _seconds(request)
        if seconds is None:
            return _json({"error": f"seconds must be a number in 0..{_MAX_WAIT:g}"}, 400)
        await asyncio.sleep(seconds)
        return _json({"delay": seconds})

    async def trickle(request: web.Request) -> web.StreamResponse:
        seconds = _seconds(request)
        try:
            interval = float(request.query.get("interval", "1"))
        except ValueError:
            interval = 0.0
        if seconds is None or not 0 < interval <= _MAX_WAIT:
            return _json({"error": "seconds and interval must be numbers, interval > 0"}, 400)
        count = math.ceil(seconds / interval)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = count
        await response.prepare(request)
        for _ in range(count):
            await asyncio.sleep(interval)
            await response.write(b".")
        await response.write_eof()
        return response

    async def status(request: web.Request) -> web.StreamResponse:
        raw = request.match_info["code"]
        code = int(raw) if raw.isdigit() else 0
        if not 200 <= code <= 599:
            return _json({"error": f"status must be 200..599 (got {raw!r})"}, 400)
        try:
            return _status_response(code, request, {"status": code})
        except ValueError:
            return _json({"error": "retry_after must be a number or 'none'"}, 400)

    async def flaky(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        try:
            fail = int(request.query.get("fail", "1"))
            code = int(request.query.get("code", "503"))
        except ValueError:
            return _json({"error": "fail and code must be integers"}, 400)
        attempt = stats.flaky.get(key, 0) + 1
        stats.flaky[key] = attempt
        if attempt <= fail:
            try:
                return _status_response(code, request, {"key": key, "attempt": attempt})
            except ValueError:
                return _json({"error": "retry_after must be a number or 'none'"}, 400)
        return _json({"key": key, "attempt": attempt})

    async def chat(request: web.Request) -> web.StreamResponse:
        nonlocal completions
        try:
            body = json.loads(await request.read())
        except ValueError:
            message = "We could not parse the JSON body of your request."
            return _error(400, message, "invalid_request_error")
        completions += 1
        try:
            payload = reply(
                body, completion_id=f"chatcmpl-{completions:012x}", created=int(time.time())
            )
        except ChatRequestError as exc:
            return _error(400, str(exc), "invalid_request_error", param=exc.param)
        return _json(payload)

    async def get_stats(request: web.Request) -> web.StreamResponse:
        try:
            window = float(request.query.get("window", "1"))
        except ValueError:
            window = 0.0
        if not window > 0:
            return _json({"error": "window must be a number of seconds > 0"}, 400)
        return _json(stats.snapshot(window, config))

    async def reset_stats(request: web.Request) -> web.StreamResponse:
        stats.reset()
        return _json({"reset": True})

    app = web.Application()
    wrap = faults.wrap
    router = app.router
    router.add_get("/", wrap(index))
    router.add_get("/todos/{id}", wrap(todo))
    router.add_route("*", "/echo", wrap(echo))
    router.add_get("/delay/{seconds}", wrap(delay))
    router.add_get("/trickle/{seconds}", wrap(trickle))
    router.add_route("*", "/status/{code}", wrap(status))
    router.add_route("*", "/flaky/{key}", wrap(flaky))
    router.add_post("/v1/chat/completions", wrap(chat))
    router.add_get("/stats", get_stats)
    router.add_post("/stats/reset", reset_stats)
    return app
