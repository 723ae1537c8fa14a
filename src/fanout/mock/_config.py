"""Settings of the mock server and the parsing of their human forms ("50ms", "100/s")."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

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


RATELIMIT_HEADER_STYLES = ("none", "ietf", "openai")
# where `fanout mock-server` takes its --api-key from when the option is not given
API_KEY_VARIABLE = "FANOUT_MOCK_API_KEY"


def parse_limit_change(text: str) -> tuple[float, float]:
    """``(seconds, factor)`` from ``"10s:0.5"`` (from 10 s after start, limits are halved)."""
    at, sep, factor = text.rpartition(":")
    try:
        if not sep:
            raise ValueError(text)
        change = parse_duration(at), float(factor)
    except ValueError:
        raise ValueError(
            f"limit change {text!r} is not understood; write TIME:FACTOR, e.g. 10s:0.5"
        ) from None
    if not (change[1] > 0 and math.isfinite(change[1])):
        raise ValueError(f"limit change factor must be a number > 0 (got {text!r})")
    return change


@dataclass(frozen=True)
class MockConfig:
    """Fault and load settings of one mock server; every field is plain data.

    The meaning of each field is in the docs of :mod:`fanout.mock`.
    """

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0
    rate_limit: tuple[int, float] | None = None
    seed: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    bucket: float = 60.0
    throttle_rate: float = 0.0
    throttle_retry_after: float | None = 1.0
    unavailable_rate: float = 0.0
    max_faults: int | None = None
    limit_schedule: tuple[tuple[float, float], ...] = ()
    capacity: int | None = None
    ratelimit_headers: str = "none"
    settle_tokens: bool = False
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number of seconds >= 0 (got {value!r})")
        for name in ("error_rate", "reset_rate", "throttle_rate", "unavailable_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1] (got {value!r})")
        if self.rate_limit is not None:
            count, period = self.rate_limit
            if count < 1 or not period > 0:
                raise ValueError(
                    f"rate_limit must be (count >= 1, period > 0) (got {self.rate_limit!r})"
                )
        for name in ("rpm", "tpm", "max_faults", "capacity"):
            value = getattr(self, name)
            least = 0 if name == "max_faults" else 1
            if value is not None and not (isinstance(value, int) and value >= least):
                raise ValueError(f"{name} must be a whole number >= {least} (got {value!r})")
        if not (self.bucket > 0 and math.isfinite(self.bucket)):
            raise ValueError(f"bucket must be a number of seconds > 0 (got {self.bucket!r})")
        after = self.throttle_retry_after
        if after is not None and not (0 <= after <= 3600):
            raise ValueError(f"throttle_retry_after must be 0..3600 s or None (got {after!r})")
        for at, factor in self.limit_schedule:
            if not (at >= 0 and math.isfinite(at) and factor > 0 and math.isfinite(factor)):
                raise ValueError(
                    "limit_schedule must be (seconds >= 0, factor > 0) pairs "
                    f"(got {self.limit_schedule!r})"
                )
        if list(self.limit_schedule) != sorted(self.limit_schedule, key=lambda c: c[0]):
            raise ValueError(f"limit_schedule must be in time order (got {self.limit_schedule!r})")
        if self.ratelimit_headers not in RATELIMIT_HEADER_STYLES:
            raise ValueError(
                f"ratelimit_headers must be one of {', '.join(RATELIMIT_HEADER_STYLES)} "
                f"(got {self.ratelimit_headers!r})"
            )
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must be a non-empty string or None")


class MockSettings(TypedDict, total=False):
    """The keyword arguments of ``MockServer(...)`` and ``MockServer.spawn(...)`` besides
    ``host`` and ``port``; durations may be strings like ``"50ms"``."""

    latency: float | str
    jitter: float | str
    error_rate: float
    reset_rate: float
    rate_limit: str | float | tuple[int, float] | None
    seed: int | None
    rpm: int | None
    tpm: int | None
    bucket: float | str
    throttle_rate: float
    throttle_retry_after: float | None
    unavailable_rate: float
    max_faults: int | None
    limit_schedule: Sequence[tuple[float | str, float] | str]
    capacity: int | None
    ratelimit_headers: str
    settle_tokens: bool
    api_key: str | None


def _seconds(value: float | str) -> float:
    return parse_duration(value) if isinstance(value, str) else float(value)


def make_config(**settings: Unpack[MockSettings]) -> MockConfig:
    """A :class:`MockConfig` from Python-friendly values (durations and rates may be strings,
    schedule changes ``(10.0, 0.5)``, ``("10s", 0.5)`` or ``"10s:0.5"``)."""
    values: dict[str, Any] = dict(settings)
    rate_limit = values.get("rate_limit")
    if isinstance(rate_limit, str):
        values["rate_limit"] = parse_rate_limit(rate_limit)
    elif isinstance(rate_limit, int | float):
        values["rate_limit"] = parse_rate_limit(repr(float(rate_limit)))
    for name in ("latency", "jitter", "bucket"):
        if name in values:
            values[name] = _seconds(values[name])
    for name in ("error_rate", "reset_rate", "throttle_rate", "unavailable_rate"):
        if name in values:
            values[name] = float(values[name])
    if "limit_schedule" in values:
        changes = (
            parse_limit_change(change)
            if isinstance(change, str)
            else (_seconds(change[0]), float(change[1]))
            for change in values["limit_schedule"]
        )
        values["limit_schedule"] = tuple(sorted(changes, key=lambda change: change[0]))
    return MockConfig(**values)


def cli_arguments(config: MockConfig) -> list[str]:
    """The ``fanout mock-server`` options that make ``config`` (but its API key, which goes
    in the environment variable :data:`API_KEY_VARIABLE`)."""
    argv = ["--latency", repr(config.latency), "--jitter", repr(config.jitter)]
    argv += ["--error-rate", repr(config.error_rate), "--reset-rate", repr(config.reset_rate)]
    if config.rate_limit is not None:
        count, period = config.rate_limit
        argv += ["--rate-limit", f"{count}/{period!r}s"]
    optional = {
        "--seed": config.seed,
        "--rpm": config.rpm,
        "--tpm": config.tpm,
        "--max-faults": config.max_faults,
        "--capacity": config.capacity,
    }
    for option, value in optional.items():
        if value is not None:
            argv += [option, str(value)]
    argv += ["--bucket", repr(config.bucket)]
    argv += ["--throttle-rate", repr(config.throttle_rate)]
    after = config.throttle_retry_after
    argv += ["--throttle-retry-after", "none" if after is None else repr(after)]
    argv += ["--unavailable-rate", repr(config.unavailable_rate)]
    for at, factor in config.limit_schedule:
        argv += ["--limit-change", f"{at!r}:{factor!r}"]
    argv += ["--ratelimit-headers", config.ratelimit_headers]
    if config.settle_tokens:
        argv.append("--settle-tokens")
    return argv
