"""The end-of-run summary: counts by status, retries, failures, throughput, latency,
tokens, and what the flow control did.

Latencies go into a log-scale histogram (1% wide buckets), so the summary of
ten million requests takes a few kilobytes, and percentiles are within 1%.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from fanout._flow import flow_summary
from fanout._progress_rate import overall_rate_text
from fanout._result import Result
from fanout.http._ratelimit import api_of, usage_of
from fanout.http._spec import InvalidLine

_BASE_MS = 0.001
_LOG_STEP = math.log(1.01)


class LatencyHistogram:
    """Percentiles of millisecond latencies within 1%, in bounded memory."""

    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.count += 1
        if ms > self.max:
            self.max = ms
        self._buckets[int(math.log(max(ms, _BASE_MS) / _BASE_MS) / _LOG_STEP)] += 1

    def percentile(self, q: float) -> float | None:
        """The latency under which a fraction ``q`` of the requests finished."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                # the middle of the bucket, never above the largest seen
                value = _BASE_MS * math.exp((bucket + 0.5) * _LOG_STEP)
                return min(value, self.max)
        return self.max  # pragma: no cover - rank <= count


class Summary:
    """Counts of one run of ``fanout http`` (or of ``fanout chat``, whose items are
    ``noun="prompt"``)."""

    def __init__(self, *, requests: int = 0, skipped: int = 0, kept_failed: int = 0,
                 noun: str = "request") -> None:
        self.noun = noun
        self.requests = requests
        self.skipped = skipped
        self.kept_failed = kept_failed
        self.done = 0
        self.ok = 0
        self.failed = 0
        self.invalid = 0
        self.retries = 0
        self.by_status: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()
        #: tokens of the answers' ``usage`` (OpenAI prompt/completion, Anthropic
        #: input/output); None until an LLM answer had one
        self.tokens: list[int] | None = None
        #: what the flow control did (``fanout._flow.Flow.state()``), set at the end
        self.flow: dict[str, Any] | None = None

    def add(self, result: Result[Any]) -> None:
        """Count one written record."""
        self.done += 1
        error = result.error
        response = result.value if error is None else getattr(error, "response", None)
        if response is not None:
            self.by_status[response.status] += 1
        attempts = result.attempts
        if attempts > 1:
            self.retries += attempts - 1
        if error is None:
            self.ok += 1
            if response is not None and (api := api_of(result.item.url)) is not None:
                used = usage_of(response.body, api)
                if used is not None:
                    tokens = self.tokens = self.tokens or [0, 0]
                    tokens[0] += used[0]
                    tokens[1] += used[1]
        else:
            self.failed += 1
            self.errors[type(error).__name__] += 1
            if isinstance(result.item, InvalidLine):
                self.invalid += 1
                return
        self.latency.add(result.elapsed * 1000.0)

    def as_dict(self, wall: float, *, exit_code: int, interrupted: str | None) -> dict[str, Any]:
        """The ``--summary-json`` document: counts; ``throughput`` in requests per
        second, ``wall_time`` in seconds; ``skipped`` were already in the output."""
        lat = self.latency
        return {
            f"{self.noun}s": self.requests,
            "done": self.done,
            "skipped": self.skipped,
            "failed_before": self.kept_failed,
            "ok": self.ok,
            "failures": self.failed,
            "invalid": self.invalid,
            "retries": self.retries,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "errors": dict(self.errors.most_common()),
            "throughput": round(self.done / wall, 3) if wall > 0 else None,
            "latency_ms": {
                "p50": _round(lat.percentile(0.50)),
                "p90": _round(lat.percentile(0.90)),
                "p99": _round(lat.percentile(0.99)),
                "max": _round(lat.max if lat.count else None),
            },
            "tokens": None if self.tokens is None else {
                "prompt": self.tokens[0], "completion": self.tokens[1],
                "total": sum(self.tokens),
            },
            "flow": self.flow,
            "wall_time": round(wall, 3),
            "interrupted": interrupted,
            "exit_code": exit_code,
        }

    def render(self, wall: float, *, interrupted: str | None = None) -> str:
        """A few lines for stderr."""
        head = "interrupted" if interrupted else "done"
        lines = [
            f"{head}: {self.done} {self.noun}{'' if self.done == 1 else 's'} in {wall:.2f}s "
            f"({overall_rate_text(self.done, wall)}): "
            f"{self.ok} ok, {self.failed} failed, {self.retries} retries"
            + (f", {self.skipped} already in the output" if self.skipped else "")
        ]
        if self.by_status:
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))
            lines.append(f"  status  {statuses}")
        if self.errors:
            errors = ", ".join(f"{k}: {v}" for k, v in self.errors.most_common())
            lines.append(f"  errors  {errors}")
        lat = self.latency
        if lat.count:
            p50, p90, p99 = (lat.percentile(q) for q in (0.5, 0.9, 0.99))
            lines.append(
                f"  latency p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, "
                f"max {lat.max:.1f} ms"
            )
        if self.tokens is not None:
            prompt, completion = self.tokens
            per_minute = f", {(prompt + completion) / wall * 60:,.0f}/min overall" if wall else ""
            lines.append(f"  tokens  {prompt + completion:,} used ({prompt:,} prompt, "
                         f"{completion:,} completion){per_minute}")
        flow = flow_summary(self.flow)
        if flow:
            lines.append(f"  flow    {flow}")
        return "\n".join(lines)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
