"""Settings of the mock server and the parsing of their human forms ("50ms", "100/s")."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*$")
_RATE = re.compile(
    r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*"
    r"(?:/\s*(\d+(?:\.\d*)?|\.\d+)?\s*(s|sec|second|m|min|minute|h|hour))?\s*$"
)
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PERIODS |= {"h": 3600.0, "hour": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"50ms"``, ``"0.05s"``, ``"1s"`` or ``"0.05"`` (plain numbers are seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"duration {text!r} is not understood; write e.g. 50ms, 0.05s or 0.05")
    value = float(match.group(1))
    return value / 1000.0 if match.group(2) == "ms" else value


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``(count, period_seconds)`` from ``"100/s"``, ``"600/min"``, ``"5/h"``, ``"10/2s"`` or
    ``"100"`` (per second).

    A fractional count such as ``"0.5/s"`` becomes one request per ``1/0.5`` seconds.
    """
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"rate limit {text!r} is not understood; write e.g. 100/s, 600/min or 5/h")
    count = float(match.group(1))
    period = float(match.group(2) or 1) * _PERIODS[match.group(3) or "s"]
    if count <= 0 or period <= 0:
        raise ValueError(f"rate limit must be > 0 requests per period (got {text!r})")
    if not count.is_integer():
        # the limiter counts whole requests per window: 2.5/s becomes 1 per 0.4 s
        return 1, period / count
    return int(count), period


@dataclass(frozen=True)
class MockConfig:
    """Fault and load settings of one mock server; every field is plain data."""

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0
    rate_limit: tuple[int, float] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number of seconds >= 0 (got {value!r})")
        for name in ("error_rate", "reset_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1] (got {value!r})")
        if self.rate_limit is not None:
            count, period = self.rate_limit
            if count < 1 or not period > 0:
                raise ValueError(
                    f"rate_limit must be (count >= 1, period > 0) (got {self.rate_limit!r})"
                )


def make_config(
    *,
    latency: float | str = 0.0,
    jitter: float | str = 0.0,
    error_rate: float = 0.0,
    reset_rate: float = 0.0,
    rate_limit: str | float | tuple[int, float] | None = None,
    seed: int | None = None,
) -> MockConfig:
    """A :class:`MockConfig` from Python-friendly values (durations and rates may be strings)."""
    limit: tuple[int, float] | None
    if rate_limit is None or isinstance(rate_limit, tuple):
        limit = rate_limit
    elif isinstance(rate_limit, str):
        limit = parse_rate_limit(rate_limit)
    else:
        limit = parse_rate_limit(repr(float(rate_limit)))
    return MockConfig(
        latency=parse_duration(latency) if isinstance(latency, str) else float(latency),
        jitter=parse_duration(jitter) if isinstance(jitter, str) else float(jitter),
        error_rate=float(error_rate),
        reset_rate=float(reset_rate),
        rate_limit=limit,
        seed=seed,
    )


def format_rate_limit(limit: tuple[int, float]) -> str:
    """The CLI form of a parsed limit, e.g. ``(100, 1.0)`` -> ``"100/1.0s"``."""
    count, period = limit
    return f"{count}/{period!r}s"
