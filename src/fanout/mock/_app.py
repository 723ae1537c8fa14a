"""The mock API as an ``aiohttp.web`` application: endpoints, limits, injected faults, ``/stats``.

Every endpoint except ``/stats`` goes through :meth:`_Server.wrap`, which, in order: counts the
request; for the ``/v1`` API, checks its key (401); applies the ``rate_limit`` window and the
requests/tokens buckets (429); draws its injected fault (429 throttle or a reset at once; 503
or 500 after the latency); waits for a free slot of ``capacity``; sleeps the latency; and
calls the endpoint. Handlers stay small: this server is the load target of benchmarks doing
thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import json
import math
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fanout.http._tokens import Api, estimate_tokens
from fanout.mock import _anthropic, _openai
from fanout.mock._buckets import retry_ms, retry_seconds
from fanout.mock._chat import RequestError, reply
from fanout.mock._config import MockConfig
from fanout.mock._faults import FaultDraw
from fanout.mock._ratelimit import Limits
from fanout.mock._stats import Stats

TODO_COUNT = 200
_MAX_WAIT = 3600.0
_NO_BODY_STATUSES = frozenset({204, 304})
_LINGER_RESET = struct.pack("ii", 1, 0)
_INVALID = object()  # the payload of a body that is not JSON
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


class Call:
    """What the pipeline and an endpoint share about one request."""

    __slots__ = ("_payload", "headers", "raw", "request_id", "reserved", "used")

    def __init__(self, raw: bytes | None) -> None:
        self.raw = raw
        self._payload: Any = None
        self.headers: dict[str, str] = {}
        self.request_id = ""
        self.reserved: int | None = None  # tokens reserved at arrival (model endpoints)
        self.used: int | None = None  # tokens of the answer's usage (set by the endpoint)

    @property
    def payload(self) -> Any:
        """The JSON body, ``None`` without one, or ``_INVALID`` if it is not JSON."""
        if self._payload is None and self.raw:
            try:
                self._payload = json.loads(self.raw)
            except ValueError:
                self._payload = _INVALID
        return self._payload


Handler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI-style error body."""
    return _json(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status,
        headers,
    )


def _api_error(
    api: Api | None,
    call: Call,
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error in the shape of the endpoint's API: Anthropic's for ``/v1/messages`` (its
    type follows from ``status``), else OpenAI's with type ``kind``."""
    if api == "anthropic":
        return _json(_anthropic.error_body(status, message, call.request_id), status, headers)
    return _error(status, message, kind, code, headers=headers)


def _todo(todo_id: int) -> dict[str, Any]:
    """A jsonplaceholder-shaped todo, the same for the same id on every run."""
    rng = random.Random(todo_id)
    return {
        "userId": (todo_id - 1) // 20 + 1,
        "id": todo_id,
        "title": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))),
        "completed": rng.random() < 0.45,
    }


def _request_id(request: web.Request, call: Call) -> str:
    """The id a request is counted under in ``/stats``; see the module docs of fanout.mock."""
    header = request.headers.get("X-Request-Id")
    if header is not None:
        return header
    query_id = request.query.get("id")
    if query_id is not None:
        return query_id
    payload = call.payload
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


def _bearer(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class _Server:
    """The state of one mock server (counters, limits, fault draws) and the pipeline that
    wraps every endpoint but ``/stats``."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.limits = Limits(config, self.stats.started)
        self.draws = FaultDraw(config)
        self.slots = asyncio.Semaphore(config.capacity) if config.capacity else None
        self.serial = 0

    def reset(self) -> None:
        """Clear the counters; refill the buckets, empty the window, restart the schedule."""
        self.stats.reset()
        self.limits = Limits(self.config, self.stats.started)

    def next_id(self) -> int:
        """A number for the next generated id (answers, request ids)."""
        self.serial += 1
        return self.serial

    def _auth_error(self, request: web.Request, api: Api, call: Call) -> web.Response | None:
        """401 (or Anthropic's 400 without ``anthropic-version``), or None if allowed."""
        key = self.config.api_key
        headers = request.headers
        if api == "anthropic":
            # newer anthropic SDKs send the key as a bearer token instead of x-api-key
            given = headers.get("x-api-key") or _bearer(headers.get("Authorization", ""))
            if not given:
                return _api_error(api, call, 401, "x-api-key header is required", "")
            if key is not None and not _same(given, key):
                return _api_error(api, call, 401, "invalid x-api-key", "")
            if not headers.get("anthropic-version"):
                return _api_error(api, call, 400, "anthropic-version: header is required", "")
            return None
        if key is None:
            return None
        authorization = headers.get("Authorization")
        if not authorization:
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return _error(401, message, "invalid_request_error")
        token = _bearer(authorization)
        if token is None or not _same(token, key):
            message = "Incorrect API key provided (the mock server's api_key is another)."
            return _error(401, message, "invalid_request_error", "invalid_api_key")
        return None

    def _announce(self, api: Api | None, now: float) -> dict[str, str]:
        """The rate-limit headers of an answer on an ``api`` endpoint (or a plain one)."""
        limits = self.limits
        headers = limits.window_headers(self.config.ratelimit_headers, now)
        if api == "openai":
            headers.update(limits.openai_headers(now))
        elif api == "anthropic":
            headers.update(limits.anthropic_headers(now, time.time()))
        return headers

    def _limit(
        self, request: web.Request, call: Call, api: Api | None, costed: bool, now: float
    ) -> web.Response | None:
        """Auth and the load-dependent limits: a refusal, or None (the tokens reserved)."""
        stats = self.stats
        limits = self.limits
        limits.follow_schedule(now - stats.started, now)
        if api is not None:
            refusal = self._auth_error(request, api, call)
            if refusal is not None:
                call.headers.update(self._announce(api, now))
                return refusal
        wait = limits.window_wait(now)
        if wait > 0:
            stats.rate_limited_by["window"] += 1
            window = limits.window
            assert window is not None
            call.headers.update(self._announce(api, now))
            message = (
                f"Rate limit reached: {window.limit(limits.scale)} requests per "
                f"{window.period:g} s. Please try again in {wait:.3f}s."
            )
            after = {"Retry-After": str(max(1, math.ceil(wait)))}
            return _api_error(api, call, 429, message, "requests", "rate_limit_exceeded", after)
        if costed:
            assert api is not None
            cost = estimate_tokens(call.payload, api)
            if limits.buckets:
                cause, wait = limits.admit(cost, now)
                if cause is not None:
                    stats.rate_limited_by[cause] += 1
                    call.headers.update(self._announce(api, now))
                    after = {}
                    if not math.isinf(wait):
                        after["retry-after"] = retry_seconds(wait)
                        if api == "openai":
                            after["retry-after-ms"] = retry_ms(wait)
                    message = limits.refusal(cause, cost, now)
                    return _api_error(api, call, 429, message, cause, "rate_limit_exceeded", after)
            call.reserved = cost
            stats.tokens_reserved += cost
        if api is not None or self.limits.window is not None:
            call.headers.update(self._announce(api, now))
        return None

    def _throttle(self, api: Api | None, call: Call) -> web.Response:
        after = self.config.throttle_retry_after
        headers = {}
        message = "Rate limit reached for requests (injected throttle)."
        if after is not None:
            headers = {"Retry-After": f"{after:g}", "retry-after-ms": str(round(after * 1000))}
            message += f" Please try again in {after:g}s."
        return _api_error(api, call, 429, message, "requests", "rate_limit_exceeded", headers)

    def wrap(self, handler: Handler, api: Api | None = None, costed: bool = False) -> Any:
        """The aiohttp handler running ``handler`` through the pipeline.

        ``api``: the endpoint's API ("openai", "anthropic"), for its errors and headers;
        ``costed``: a model call, whose tokens are reserved when it arrives.
        """
        config = self.config
        stats = self.stats
        latency = config.latency
        jitter = config.jitter
        max_faults = config.max_faults
        settle = config.settle_tokens
        read_any_body = api is not None

        async def answer(
            request: web.Request, call: Call, key: str, attempt: int
        ) -> web.StreamResponse | None:
            refusal = self._limit(request, call, api, costed, time.monotonic())
            if refusal is not None:
                return refusal
            fault = None
            delay = latency
            if self.draws.active:
                fault, spread = self.draws.draw(key, attempt)
                delay += spread * jitter
                if fault is not None:
                    faults = stats.faults_by_id.get(key, 0)
                    if max_faults is not None and faults >= max_faults:
                        stats.faults_spared += 1
                        fault = None
                    else:
                        stats.faults_by_id[key] = faults + 1
                if fault == "throttle":
                    stats.rate_limited_by["throttle"] += 1
                    return self._throttle(api, call)
                if fault == "reset":
                    stats.resets += 1
                    _abort_with_reset(request)
                    return None
            slots = self.slots
            if slots is not None:
                await self._queue(slots)
            try:
                if delay > 0:
                    await asyncio.sleep(delay)
                if fault == "unavailable":
                    stats.unavailable_injected += 1
                    if api == "anthropic":
                        return _api_error(api, call, 529, "Overloaded", "overloaded_error")
                    message = "The server is overloaded or not ready yet (injected)."
                    return _error(503, message, "server_error")
                if fault == "error":
                    stats.errors_injected += 1
                    message = "The server had an error (injected)."
                    return _api_error(api, call, 500, message, "server_error")
                return await handler(request, call)
            finally:
                if slots is not None:
                    slots.release()

        async def serve(request: web.Request) -> web.StreamResponse:
            now = time.monotonic()
            raw = None
            if request.body_exists and (
                read_any_body or request.content_type == "application/json"
            ):
                raw = await request.read()
            call = Call(raw)
            if api is not None:
                call.request_id = f"req_{self.next_id():024x}"
                call.headers["request-id" if api == "anthropic" else "x-request-id"] = (
                    call.request_id
                )
            key = _request_id(request, call)
            elapsed = now - stats.started
            stats.total += 1
            attempt = stats.by_id[key] = stats.by_id.get(key, 0) + 1
            second = int(elapsed)
            stats.per_second[second] = stats.per_second.get(second, 0) + 1
            stats.starts.append(elapsed)
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            status: int | None = None
            try:
                response = await answer(request, call, key, attempt)
                if response is None:
                    # a reset connection: nothing can be sent any more; aiohttp drops this
                    return web.Response(status=500)
                if call.headers and not response.prepared:
                    response.headers.update(call.headers)
                status = response.status
                return response
            finally:
                stats.in_flight -= 1
                if status is not None:
                    stats.by_status[status] = stats.by_status.get(status, 0) + 1
                    if 200 <= status < 300:
                        stats.by_id_ok[key] = stats.by_id_ok.get(key, 0) + 1
                if call.used is not None:
                    stats.tokens_used += call.used
                if settle and call.reserved is not None:
                    self.limits.settle(call.reserved, call.used or 0, time.monotonic())

        return serve

    async def _queue(self, slots: asyncio.Semaphore) -> None:
        """Wait for a free processing slot, counting the queue in ``/stats``."""
        stats = self.stats
        if not slots.locked():
            await slots.acquire()
            return
        stats.queued += 1
        stats.max_queued = max(stats.max_queued, stats.queued)
        started = time.monotonic()
        try:
            await slots.acquire()
        finally:
            stats.queued -= 1
            waited = time.monotonic() - started
            stats.queue_wait_total += waited
            stats.queue_wait_max = max(stats.queue_wait_max, waited)


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
    server = _Server(config)
    stats = server.stats
    todos = {i: json.dumps(_todo(i)).encode() for i in range(1, TODO_COUNT + 1)}

    async def index(request: web.Request, call: Call) -> web.StreamResponse:
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
                    "/v1/completions",
                    "/v1/embeddings",
                    "/v1/models",
                    "/v1/models/{id}",
                    "/v1/messages",
                    "/stats",
                    "/stats/reset",
                ],
            }
        )

    async def todo(request: web.Request, call: Call) -> web.StreamResponse:
        raw = request.match_info["id"]
        body = todos.get(int(raw)) if raw.isdigit() else None
        if body is None:
            return _json({"error": f"todo {raw!r} not found; ids are 1..{TODO_COUNT}"}, 404)
        return web.Response(body=body, content_type="application/json")

    async def echo(request: web.Request, call: Call) -> web.StreamResponse:
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

    async def delay(request: web.Request, call: Call) -> web.StreamResponse:
        seconds = _seconds(request)
        if seconds is None:
            return _json({"error": f"seconds must be a number in 0..{_MAX_WAIT:g}"}, 400)
        await asyncio.sleep(seconds)
        return _json({"delay": seconds})

    async def trickle(request: web.Request, call: Call) -> web.StreamResponse:
        seconds = _seconds(request)
        try:
            interval = float(request.query.get("interval", "1"))
        except ValueError:
            interval = 0.0
        if seconds is None or not 0 < interval <= _MAX_WAIT:
            return _json({"error": "seconds and interval must be numbers, interval > 0"}, 400)
        count = math.ceil(seconds / interval)
        # prepared here, so the pipeline can't add its headers afterwards
        response = web.StreamResponse(headers={"Content-Type": "text/plain", **call.headers})
        response.content_length = count
        await response.prepare(request)
        for _ in range(count):
            await asyncio.sleep(interval)
            await response.write(b".")
        await response.write_eof()
        return response

    async def status(request: web.Request, call: Call) -> web.StreamResponse:
        raw = request.match_info["code"]
        code = int(raw) if raw.isdigit() else 0
        if not 200 <= code <= 599:
            return _json({"error": f"status must be 200..599 (got {raw!r})"}, 400)
        try:
            return _status_response(code, request, {"status": code})
        except ValueError:
            return _json({"error": "retry_after must be a number or 'none'"}, 400)

    async def flaky(request: web.Request, call: Call) -> web.StreamResponse:
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

    def model_call(answer: Callable[[Any, int], dict[str, Any]], api: Api = "openai") -> Handler:
        """An endpoint answering a JSON request with ``answer(body, serial)``."""

        async def handle(request: web.Request, call: Call) -> web.StreamResponse:
            body = call.payload
            if body is _INVALID or body is None:
                message = "We could not parse the JSON body of your request."
                return _api_error(api, call, 400, message, "invalid_request_error")
            try:
                payload = answer(body, server.next_id())
            except RequestError as exc:
                if api == "anthropic":
                    return _api_error(api, call, 400, str(exc), "invalid_request_error")
                return _error(400, str(exc), "invalid_request_error", param=exc.param)
            usage = payload["usage"]
            if api == "anthropic":
                call.used = usage["input_tokens"] + usage["output_tokens"]
            else:
                call.used = usage["total_tokens"]
            return _json(payload)

        return handle

    def chat(body: Any, serial: int) -> dict[str, Any]:
        return reply(body, completion_id=f"chatcmpl-{serial:012x}", created=int(time.time()))

    def completion(body: Any, serial: int) -> dict[str, Any]:
        created = int(time.time())
        return _openai.completion(body, completion_id=f"cmpl-{serial:012x}", created=created)

    def embedding(body: Any, serial: int) -> dict[str, Any]:
        return _openai.embedding(body)

    def message(body: Any, serial: int) -> dict[str, Any]:
        return _anthropic.message(body, message_id=f"msg_{serial:024x}")

    async def models(request: web.Request, call: Call) -> web.StreamResponse:
        return _json(_openai.models())

    async def model(request: web.Request, call: Call) -> web.StreamResponse:
        model_id = request.match_info["id"]
        found = _openai.model(model_id)
        if found is None:
            message = f"The model '{model_id}' does not exist or you do not have access to it."
            return _error(404, message, "invalid_request_error", "model_not_found")
        return _json(found)

    async def not_found(request: web.Request, call: Call) -> web.StreamResponse:
        message = f"Invalid URL ({request.method} {request.path})"
        return _error(404, message, "invalid_request_error")

    async def get_stats(request: web.Request) -> web.StreamResponse:
        try:
            window = float(request.query.get("window", "1"))
        except ValueError:
            window = 0.0
        if not window > 0:
            return _json({"error": "window must be a number of seconds > 0"}, 400)
        return _json(stats.snapshot(window, config, server.limits))

    async def reset_stats(request: web.Request) -> web.StreamResponse:
        server.reset()
        return _json({"reset": True})

    app = web.Application()
    wrap = server.wrap
    router = app.router
    router.add_get("/", wrap(index))
    router.add_get("/todos/{id}", wrap(todo))
    router.add_route("*", "/echo", wrap(echo))
    router.add_get("/delay/{seconds}", wrap(delay))
    router.add_get("/trickle/{seconds}", wrap(trickle))
    router.add_route("*", "/status/{code}", wrap(status))
    router.add_route("*", "/flaky/{key}", wrap(flaky))
    router.add_post("/v1/chat/completions", wrap(model_call(chat), "openai", costed=True))
    router.add_post("/v1/completions", wrap(model_call(completion), "openai", costed=True))
    router.add_post("/v1/embeddings", wrap(model_call(embedding), "openai", costed=True))
    router.add_post(
        "/v1/messages", wrap(model_call(message, "anthropic"), "anthropic", costed=True)
    )
    router.add_get("/v1/models", wrap(models, "openai"))
    router.add_get("/v1/models/{id}", wrap(model, "openai"))
    # anything else under /v1 (or a wrong method) is OpenAI's "Invalid URL" 404
    router.add_route("*", "/v1/{tail:.*}", wrap(not_found, "openai"))
    router.add_get("/stats", get_stats)
    router.add_post("/stats/reset", reset_stats)
    return app
