"""The one async callable ``fanout http`` hands to the orchestrator: send one request.

It owns nothing of the run's policy. It tells the orchestrator what a failure
means through attributes on the exception it raises (``retryable``,
``retry_after``, ``throttle``); retries, backoff, pacing and the per-attempt
deadline (which cancels this coroutine, wherever it is waiting) are the core's.

Redirects are followed here, not by aiohttp: on a hop to another origin
(scheme, host or port) or from https to http, every sensitive header is dropped
before the request is sent (aiohttp, requests and urllib3 forward ``X-API-Key``).
Each hop goes through the proxy ``Proxies.pick`` chooses for it (``_proxy``).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterable
from http import HTTPStatus

import aiohttp
from yarl import URL

from fanout.http._proxy import DIRECT, Proxies
from fanout.http._spec import InvalidLine, RequestSpec

DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 65536


class Response:
    """What is kept of one HTTP response."""

    __slots__ = ("body", "headers", "reason", "request_id", "status", "truncated")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None,
        body: bytes,
        truncated: bool,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.truncated = truncated
        #: the server's ``x-request-id`` header, when the client keeps it
        self.request_id = request_id


class HTTPStatusError(Exception):
    """The server answered with a status that is not a success.

    ``retryable`` is True for the statuses in the retry set; ``retry_after`` is
    the server's ``Retry-After`` in seconds (either form); ``throttle`` is True
    for 429, so the whole run slows down instead of this request alone.
    """

    def __init__(self, response: Response, retryable: bool, retry_after: float | None) -> None:
        self.response = response
        self.status = response.status
        self.retryable = retryable
        self.retry_after = retry_after
        self.throttle = response.status == 429
        super().__init__(f"HTTP {response.status} {_reason(response)}".rstrip())


class TooManyRedirects(Exception):
    """More than ``MAX_REDIRECTS`` redirects in a row."""

    retryable = False

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"more than {MAX_REDIRECTS} redirects (last status {response.status})")


class InvalidInput(Exception):
    """An input line that failed validation (``--skip-invalid``); nothing was sent."""

    retryable = False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP date; None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def is_retryable(exc: BaseException) -> bool:
    """The core's ``retry_on`` for exceptions without a ``retryable`` hint: connection
    errors, resets and timeouts, for every method. A bad certificate or URL is final,
    and so is a proxy refusing a tunnel (407, 403) unless its status is worth a retry."""
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.InvalidURL,
                        aiohttp.ClientConnectorSSLError)):
        return False
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # a proxy refused the tunnel
        return exc.status in DEFAULT_RETRY_STATUSES
    return isinstance(exc, (aiohttp.ClientError, OSError, TimeoutError, asyncio.TimeoutError))


def _reason(response: Response) -> str:
    if response.reason:
        return response.reason
    try:
        return HTTPStatus(response.status).phrase
    except ValueError:
        return ""


class HttpClient:
    """``await client(spec)`` sends one request and returns its ``Response``, or raises.

    The aiohttp session is created on the first call, inside the running loop,
    with a connection pool of ``concurrency`` keep-alive connections; ``aclose()``
    closes it. ``proxies``: where requests go through (None: straight to the
    server); ``request_ids``: keep each response's ``x-request-id`` header.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        retry_statuses: Iterable[int] = DEFAULT_RETRY_STATUSES,
        max_body: int | None = None,
        include_headers: bool = False,
        verify_tls: bool = True,
        proxies: Proxies | None = None,
        request_ids: bool = False,
    ) -> None:
        self.concurrency = concurrency
        self.retry_statuses = frozenset(retry_statuses)
        self.max_body = max_body
        self.include_headers = include_headers
        self.verify_tls = verify_tls
        self.proxies = proxies or None
        self.request_ids = request_ids
        self._session: aiohttp.ClientSession | None = None
        self.__name__ = "http"  # the progress bar's label

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            limit_per_host=0,
            ssl=self.verify_tls,
            keepalive_timeout=30.0,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The orchestrator cancels the call at ``timeout`` (connect, send,
            # headers and body: the whole attempt). No aiohttp timers besides:
            # they would cost two more timer operations per request.
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),  # requests must not share cookies
            raise_for_status=False,
            auto_decompress=True,
        )
        return self._session

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, spec: RequestSpec | InvalidLine) -> Response:
        if isinstance(spec, InvalidLine):
            raise InvalidInput(spec.message)
        session = self._session or self._open()
        method = spec.method
        url: URL | str = spec.url
        headers = spec.headers
        params = spec.params
        body_json, has_json, data = spec.json, spec.has_json, spec.data
        origin: URL | None = None
        proxies = self.proxies
        for hop in range(MAX_REDIRECTS + 1):
            proxy = proxies.pick(str(url)) if proxies is not None else DIRECT
            if has_json:
                request = session.request(method, url, headers=headers, params=params,
                                          json=body_json, allow_redirects=False,
                                          proxy=proxy.url)
            else:
                request = session.request(method, url, headers=headers, params=params,
                                          data=data, allow_redirects=False,
                                          proxy=proxy.url)
            async with request as resp:
                status = resp.status
                location = resp.headers.get("Location") if status in _REDIRECTS else None
                if location is None:
                    return self._judge(resp, await self._response(resp))
                if hop == MAX_REDIRECTS:
                    raise TooManyRedirects(await self._response(resp))
                current = resp.url
                target = current.join(URL(location))
                if origin is None:
                    origin = current.origin()
                if target.scheme not in ("http", "https"):
                    return self._judge(resp, await self._response(resp))
                if spec.sensitive and (
                    target.origin() != origin or (current.scheme == "https"
                                                  and target.scheme == "http")
                ):
                    headers = {k: v for k, v in headers.items()
                               if k.lower() not in spec.sensitive}
                    origin = target.origin()  # stays dropped for every later hop
                if status == 303 or (status in (301, 302) and method == "POST"):
                    if method != "HEAD":
                        method = "GET"
                    has_json, data = False, None
                    headers = {k: v for k, v in headers.items()
                               if k.lower() not in ("content-type", "content-length")}
                url = target
                params = None
        raise AssertionError("unreachable: the last hop returns or raises")

    async def _response(self, resp: aiohttp.ClientResponse) -> Response:
        limit = self.max_body
        truncated = False
        if limit is None:
            body = await resp.read()
        else:
            kept = bytearray()
            stream = resp.content
            while True:
                chunk = await stream.read(_READ_CHUNK)
                if not chunk:
                    break
                room = limit - len(kept)
                if room > 0:
                    kept += chunk[:room]
                if len(chunk) > room:
                    truncated = True
            body = bytes(kept)
        headers = list(resp.headers.items()) if self.include_headers else None
        request_id = resp.headers.get("x-request-id") if self.request_ids else None
        return Response(resp.status, resp.reason or "", headers, body, truncated, request_id)

    def _judge(self, resp: aiohttp.ClientResponse, response: Response) -> Response:
        """The response if its status is a success, else the HTTPStatusError to raise."""
        status = response.status
        if 200 <= status < 300:
            return response
        retryable = status in self.retry_statuses
        retry_after = parse_retry_after(resp.headers.get("Retry-After")) if retryable else None
        raise HTTPStatusError(response, retryable, retry_after)

