"""The mock's load-dependent limits together: the ``--rate-limit`` sliding window, the
requests- and tokens-per-minute buckets, the limit schedule that scales them all, and the
headers that announce them (OpenAI ``x-ratelimit-*``, Anthropic ``anthropic-ratelimit-*``,
IETF draft ``RateLimit-*``). Times are passed in, so tests need no clock."""

from __future__ import annotations

import math
from typing import Literal

from fanout.mock._buckets import (
    SlidingWindow,
    TokenBucket,
    go_duration,
    rfc3339,
    schedule_factor,
)
from fanout.mock._config import MockConfig

Cause = Literal["requests", "tokens"]


class Limits:
    """The limits of one server; ``now`` is monotonic seconds, ``wall`` Unix time."""

    def __init__(self, config: MockConfig, now: float) -> None:
        self.config = config
        self.schedule = config.limit_schedule
        self.scale = 1.0
        self.window = SlidingWindow(*config.rate_limit) if config.rate_limit else None
        self.requests = (
            TokenBucket(config.rpm, config.bucket, now, min_capacity=1.0) if config.rpm else None
        )
        self.tokens = TokenBucket(config.tpm, config.bucket, now) if config.tpm else None

    @property
    def buckets(self) -> bool:
        """Whether requests or tokens per minute are limited."""
        return self.requests is not None or self.tokens is not None

    def follow_schedule(self, elapsed: float, now: float) -> None:
        """Apply the schedule's factor for ``elapsed`` seconds since start (or reset)."""
        if not self.schedule:
            return
        factor = schedule_factor(self.schedule, elapsed)
        if factor != self.scale:
            self.scale = factor
            for bucket in (self.requests, self.tokens):
                if bucket is not None:
                    bucket.rescale(factor, now)

    def window_wait(self, now: float) -> float:
        """0.0 if the sliding window accepts a request now (and counts it), else the wait."""
        return self.window.retry_after(now, self.scale) if self.window is not None else 0.0

    def admit(self, cost: int, now: float) -> tuple[Cause | None, float]:
        """Reserve one request and ``cost`` tokens if both fit: ``(None, 0.0)``; else the
        bucket that refused (requests first) and seconds until the request would fit
        (``inf``: more tokens than the bucket holds). Nothing is reserved on a refusal."""
        requests, tokens = self.requests, self.tokens
        if requests is not None:
            wait = requests.wait(1, now)
            if wait > 0:
                return "requests", wait
        if tokens is not None:
            wait = tokens.wait(cost, now)
            if wait > 0:
                return "tokens", wait
            tokens.take(cost)
        if requests is not None:
            requests.take(1)
        return None, 0.0

    def refusal(self, cause: Cause, cost: int, now: float) -> str:
        """OpenAI's message for a refusal by ``cause``'s bucket."""
        bucket = self.requests if cause == "requests" else self.tokens
        assert bucket is not None
        unit = "RPM" if cause == "requests" else "TPM"
        requested = 1 if cause == "requests" else cost
        limit = round(bucket.limit)
        wait = bucket.wait(requested, now)
        if math.isinf(wait):
            return (
                f"Request too large on {cause} per min ({unit}): Limit {limit}, "
                f"Requested {requested}. The input or output tokens must be reduced."
            )
        used = max(0, round(bucket.capacity - bucket.level))
        return (
            f"Rate limit reached for {cause} per min ({unit}): Limit {limit}, Used {used}, "
            f"Requested {requested}. Please try again in {go_duration(wait)}."
        )

    def settle(self, reserved: int, used: int, now: float) -> None:
        """Correct a request's token reservation with its real usage."""
        if self.tokens is not None and used != reserved:
            self.tokens.adjust(reserved - used, now)

    def openai_headers(self, now: float) -> dict[str, str]:
        """``x-ratelimit-*`` of the buckets (reset: time until full, Go duration format)."""
        headers: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(round(bucket.limit))
                headers[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining(now))
                headers[f"x-ratelimit-reset-{name}"] = go_duration(bucket.until_full(now))
        return headers

    def anthropic_headers(self, now: float, wall: float) -> dict[str, str]:
        """``anthropic-ratelimit-*`` of the buckets (reset: when full, RFC 3339)."""
        headers: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers[f"anthropic-ratelimit-{name}-limit"] = str(round(bucket.limit))
                headers[f"anthropic-ratelimit-{name}-remaining"] = str(bucket.remaining(now))
                headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339(
                    wall + bucket.until_full(now)
                )
        return headers

    def window_headers(self, style: str, now: float) -> dict[str, str]:
        """The sliding window announced in ``style``: ``ietf`` (``RateLimit-*``, reset in
        whole seconds until the whole quota is back), ``openai`` or ``none``."""
        window = self.window
        if window is None or style == "none":
            return {}
        limit = str(window.limit(self.scale))
        remaining = str(window.remaining(now, self.scale))
        until_full = window.until_full(now)
        if style == "ietf":
            return {
                "RateLimit-Limit": limit,
                "RateLimit-Remaining": remaining,
                "RateLimit-Reset": str(math.ceil(until_full - 1e-9)),
                "RateLimit-Policy": f"{limit};w={window.period:g}",
            }
        return {
            "x-ratelimit-limit-requests": limit,
            "x-ratelimit-remaining-requests": remaining,
            "x-ratelimit-reset-requests": go_duration(until_full),
        }
