"""What a server says about its rate limits, read from its answers for the run's flow control.

Header families, and what each means (``fanout._quota`` models them):

OpenAI, ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
    Continuously refilled buckets. ``limit`` is per minute; ``reset`` (a Go
    duration: ``20ms``, ``1.5s``, ``6m0s``) is the time until the bucket is full
    again, not when the quota comes back: at 0 remaining the run paces at
    ``limit / 60`` a second.
Anthropic, ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``
    The same kind of bucket; ``reset`` is an RFC 3339 time. (The finer
    ``input-tokens``/``output-tokens`` buckets are folded into ``tokens`` by the
    API itself: that one is the most restrictive.)
IETF draft, ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``
    A quota per window; ``reset`` is the seconds until it comes back, and at 0
    remaining the run waits for it. ``RateLimit-Policy: 100;w=60`` gives the
    window. The later drafts' single field ``RateLimit: limit=100, remaining=50,
    reset=5`` (or ``r=50;t=5`` with ``RateLimit-Policy: q=100;w=60``) too.
GitHub and others, ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``
    A window; ``reset`` is a Unix time (or, when small, seconds).

``Retry-After`` stays with the request that carried it (the retry policy waits
that long before trying it again); OpenAI's ``retry-after-ms`` says it to the
millisecond and wins. The token buckets count what the provider reserves when a
request arrives, estimated from its body (``fanout.http._tokens``): see
:func:`request_tokens`. Anthropic then charges what the answer really used
(``usage.input_tokens + output_tokens``), so an answer's ``usage`` corrects the
run's ``--tpm`` budget there (:func:`settle`); OpenAI keeps the reservation
(prompt estimate + ``max_tokens``), so its ``usage`` is only reported.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from fanout._budget import charge
from fanout._flow import Flow, current_flow
from fanout._quota import QuotaReport, Resource
from fanout.http._spec import InvalidLine, RequestSpec
from fanout.http._tokens import Api, estimate_tokens

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PARAM = re.compile(r"(?:^|[,;\s])([a-z]+)\s*=\s*\"?([0-9.]+)")
_RESOURCES: tuple[Resource, ...] = ("requests", "tokens")
#: a "reset" above this is a Unix time, not a number of seconds
_EPOCH = 1e9

Estimator = Callable[[Any, str], float]


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``20ms``, ``1.5s``, ``6m0s``, ``1h2m3s``); None if unreadable."""
    text = text.strip()
    if not text:
        return None
    total, end = 0.0, 0
    for match in _GO_PART.finditer(text):
        if match.start() != end:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        end = match.end()
    return total if end == len(text) else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.split(",")[0].strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _until(stamp: str | None, now: float) -> float | None:
    """Seconds from ``now`` (Unix time) until an RFC 3339 time."""
    if not stamp:
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def _params(text: str | None) -> dict[str, float]:
    return {k: float(v) for k, v in _PARAM.findall(text.lower())} if text else {}


def reports(headers: Mapping[str, str], now: float | None = None) -> list[QuotaReport]:
    """Every limit the headers of one answer announce (case-insensitive ``headers``)."""
    found: list[QuotaReport] = []
    get = headers.get
    wall: float | None = now
    for resource in _RESOURCES:
        remaining = _number(get(f"x-ratelimit-remaining-{resource}"))
        if remaining is not None:
            reset = get(f"x-ratelimit-reset-{resource}")
            found.append(QuotaReport(
                resource, "continuous", remaining,
                go_duration(reset) if reset else None,
                _number(get(f"x-ratelimit-limit-{resource}")), 60.0,
            ))
        remaining = _number(get(f"anthropic-ratelimit-{resource}-remaining"))
        if remaining is not None:
            wall = time.time() if wall is None else wall
            found.append(QuotaReport(
                resource, "continuous", remaining,
                _until(get(f"anthropic-ratelimit-{resource}-reset"), wall),
                _number(get(f"anthropic-ratelimit-{resource}-limit")), 60.0,
            ))
    window = _ietf(get) or _plain(get, wall)
    if window is not None:
        found.append(window)
    return found


def _ietf(get: Callable[[str], str | None]) -> QuotaReport | None:
    policy = _params(get("RateLimit-Policy"))
    period = policy.get("w")
    remaining = _number(get("RateLimit-Remaining"))
    if remaining is not None:
        return QuotaReport("requests", "window", remaining, _number(get("RateLimit-Reset")),
                           _number(get("RateLimit-Limit")) or policy.get("q"), period)
    combined = get("RateLimit")
    if combined is None:
        return None
    fields = _params(combined)
    remaining = fields.get("remaining", fields.get("r"))
    if remaining is None:
        return None
    return QuotaReport("requests", "window", remaining, fields.get("reset", fields.get("t")),
                       fields.get("limit", policy.get("q")), period)


def _plain(get: Callable[[str], str | None], wall: float | None) -> QuotaReport | None:
    remaining = _number(get("x-ratelimit-remaining"))
    if remaining is None:
        return None
    reset = _number(get("x-ratelimit-reset"))
    if reset is not None and reset > _EPOCH:
        reset = max(0.0, reset - (time.time() if wall is None else wall))
    return QuotaReport("requests", "window", remaining, reset,
                       _number(get("x-ratelimit-limit")), None)


def precise_retry_after(headers: Mapping[str, str]) -> float | None:
    """OpenAI's ``retry-after-ms``, in seconds, if present."""
    ms = _number(headers.get("retry-after-ms"))
    return None if ms is None else ms / 1000.0


def api_of(url: str) -> Api | None:
    """The LLM API a URL is an endpoint of, by its path: ``/messages`` is Anthropic's,
    ``/chat/completions``, ``/completions``, ``/embeddings`` OpenAI's."""
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith(("/completions", "/embeddings")):
        return "openai"
    return None


def default_estimator(body: Any, url: str) -> float:
    """Tokens the provider reserves for a request: :func:`fanout.http._tokens.estimate_tokens`
    for an OpenAI or Anthropic endpoint, 0 for any other request."""
    api = api_of(url)
    return float(estimate_tokens(body, api)) if api is not None else 0.0


def request_tokens(estimator: Estimator) -> Callable[[Any], float]:
    """The run's ``cost``: ``estimator(body, url)`` of each request (0 for an invalid line)."""

    def cost(spec: RequestSpec | InvalidLine) -> float:
        if isinstance(spec, InvalidLine):
            return 0.0
        try:
            return estimator(spec.json if spec.has_json else None, spec.url)
        except Exception as exc:
            raise ValueError(f"line {spec.line} (id {spec.id!r}): the token estimator "
                             f"raised {type(exc).__name__}: {exc}") from None

    return cost


def usage_of(body: bytes, api: Api) -> tuple[int, int] | None:
    """``(prompt or input tokens, completion or output tokens)`` of an answer's ``usage``."""
    try:
        usage = json.loads(body).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage_counts(usage, api)


def usage_counts(usage: Any, api: Api) -> tuple[int, int] | None:
    """``(prompt or input tokens, completion or output tokens)`` of a ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    names = ("input_tokens", "output_tokens") if api == "anthropic" else (
        "prompt_tokens", "completion_tokens")
    values = [usage.get(name, 0) for name in names]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return None
    return values[0], values[1]


class RateWatch:
    """One request's link to its run's flow control (``begin()`` is None outside a
    run that follows costs): it reports the rate-limit headers of each answer and,
    for Anthropic, settles the budget with the answer's ``usage``."""

    __slots__ = ("flow", "started")

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.started = flow.now()

    @staticmethod
    def begin() -> RateWatch | None:
        flow = current_flow()
        return RateWatch(flow) if flow is not None else None

    def headers(self, headers: Mapping[str, str]) -> None:
        found = reports(headers)
        if found:
            self.flow.report(found, self.started)

    def settle(self, spec: RequestSpec, status: int, body: bytes) -> None:
        if 200 <= status < 300 and api_of(spec.url) == "anthropic":
            used = usage_of(body, "anthropic")
            if used is not None:
                charge(float(sum(used)))
