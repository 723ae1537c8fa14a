"""What the mock server saw since start or the last reset, as ``GET /stats`` shows it (each
field is described in the docs of :mod:`fanout.mock`)."""

from __future__ import annotations

import time
from array import array
from typing import Any

from fanout.mock._config import MockConfig
from fanout.mock._ratelimit import Limits

RATE_LIMIT_CAUSES = ("requests", "tokens", "throttle", "window")


def max_in_window(starts: array[float], window: float) -> int:
    """The largest number of ``starts`` (sorted) inside any half-open window of ``window`` s."""
    best = 0
    left = 0
    for right, start in enumerate(starts):
        while start - starts[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


class Stats:
    """The counters of one server; the pipeline in ``_app`` updates them in place."""

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
        self.rate_limited_by = dict.fromkeys(RATE_LIMIT_CAUSES, 0)
        self.errors_injected = 0
        self.unavailable_injected = 0
        self.faults_by_id: dict[str, int] = {}
        self.faults_spared = 0
        self.tokens_reserved = 0
        self.tokens_used = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.queued = 0
        self.max_queued = 0
        self.queue_wait_total = 0.0
        self.queue_wait_max = 0.0
        self.starts: array[float] = array("d")
        self.flaky: dict[str, int] = {}

    def snapshot(self, window: float, config: MockConfig, limits: Limits) -> dict[str, Any]:
        now = time.monotonic()
        in_1s = max_in_window(self.starts, 1.0)
        by_cause = self.rate_limited_by
        buckets: dict[str, Any] = {}
        for name, bucket in (("requests", limits.requests), ("tokens", limits.tokens)):
            buckets[name] = None
            if bucket is not None:
                buckets[name] = {
                    "limit": bucket.limit,
                    "capacity": bucket.capacity,
                    "remaining": bucket.remaining(now),
                    "reset": bucket.until_full(now),
                }
        return {
            "started_at": self.started_at,
            "uptime": now - self.started,
            "total": self.total,
            "by_id": self.by_id,
            "by_id_ok": self.by_id_ok,
            "per_second": {str(second): n for second, n in sorted(self.per_second.items())},
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "resets": self.resets,
            "rate_limited": sum(by_cause.values()),
            "rate_limited_by": by_cause,
            "errors_injected": self.errors_injected,
            "unavailable_injected": self.unavailable_injected,
            "faults_injected": by_cause["throttle"]
            + self.unavailable_injected
            + self.errors_injected
            + self.resets,
            "faults_by_id": self.faults_by_id,
            "faults_spared": self.faults_spared,
            "tokens_reserved": self.tokens_reserved,
            "tokens_used": self.tokens_used,
            "buckets": buckets,
            "limit_factor": limits.scale,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "queued": self.queued,
            "max_queued": self.max_queued,
            "queue_wait_total": self.queue_wait_total,
            "queue_wait_max": self.queue_wait_max,
            "max_in_1s": in_1s,
            "window": window,
            "max_in_window": in_1s if window == 1.0 else max_in_window(self.starts, window),
            "config": _settings(config),
        }


def _settings(config: MockConfig) -> dict[str, Any]:
    """The server's settings as plain JSON; the API key only as whether one is set."""
    limit = config.rate_limit
    return {
        "latency": config.latency,
        "jitter": config.jitter,
        "error_rate": config.error_rate,
        "reset_rate": config.reset_rate,
        "rate_limit": list(limit) if limit else None,
        "seed": config.seed,
        "rpm": config.rpm,
        "tpm": config.tpm,
        "bucket": config.bucket,
        "throttle_rate": config.throttle_rate,
        "throttle_retry_after": config.throttle_retry_after,
        "unavailable_rate": config.unavailable_rate,
        "max_faults": config.max_faults,
        "limit_schedule": [list(change) for change in config.limit_schedule],
        "capacity": config.capacity,
        "ratelimit_headers": config.ratelimit_headers,
        "settle_tokens": config.settle_tokens,
        "api_key_set": config.api_key is not None,
    }
