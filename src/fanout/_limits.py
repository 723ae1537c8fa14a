"""Rate specs and the pacer every time-based limit of a run is made of.

``parse_rate("600/min")`` turns a spec into units per second. ``Pacer`` is GCRA
with a burst of one call, weighted: each start pushes the *theoretical arrival
time* (``tat``) on by ``cost / per_second``, and the next start may go once
``tat`` has passed, so starts are evenly spaced by their cost and no window of
length ``T`` sees more than ``per_second * T`` units start, plus the cost of one
call. A full-size token bucket (aiolimiter's leaky bucket) lets a burst of a
whole period follow a quiet one, i.e. up to twice the limit in some windows;
see https://brandur.org/rate-limiting for GCRA.

Nothing here reads a clock: times are passed in, so the arithmetic is tested
without waiting.
"""

from __future__ import annotations

import math
import re

from fanout._errors import ConfigError

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_RATE_RE = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([0-9]*\.?[0-9]*)\s*([a-z]+)\s*$"
)

#: ``rate=``: pace 3% under the limit, so that network and scheduling jitter
#: between our start and the server's clock (up to 30 ms over a 1 s window)
#: does not put limit+1 requests into one of its windows
RATE_SAFETY = 1.03
#: how late a start may be and keep the pacer's schedule (s)
_SLACK = 0.005
#: ``rate``'s pacer makes up at most this share of a step: its starts stay evenly
#: spaced, no gap under 98% of the limit's
RATE_CATCH_UP = 0.045
#: ``budget=``: 0.5% under; a budget is mostly a provider's token bucket, which
#: absorbs jitter itself
BUDGET_SAFETY = 1.005


def parse_rate(
    rate: str | float | int | None, *, name: str = "rate", unit: str = "calls"
) -> float | None:
    """Units per second from ``"20/s"``, ``"600/min"``, ``"5/2s"``, ``"1000/h"`` or a number."""
    if rate is None:
        return None
    if isinstance(rate, bool):
        raise ConfigError(f"{name} must be like '20/s' or '600/min' (got {name}={rate!r})")
    if isinstance(rate, (int, float)):
        per_second = float(rate)
    elif isinstance(rate, str):
        match = _RATE_RE.match(rate.lower())
        if match is None or match.group(3) not in _UNITS:
            raise ConfigError(
                f"{name} must be like '20/s', '600/min' or '5000/h' (got {name}={rate!r})"
            )
        count = float(match.group(1))
        span = float(match.group(2)) if match.group(2) else 1.0
        if span <= 0:
            raise ConfigError(f"{name} period must be > 0 (got {name}={rate!r})")
        per_second = count / (span * _UNITS[match.group(3)])
    else:
        raise ConfigError(f"{name} must be a string like '20/s' or a number (got {name}={rate!r})")
    if not math.isfinite(per_second) or per_second <= 0:
        raise ConfigError(f"{name} must be > 0 {unit} per second (got {name}={rate!r})")
    return per_second


class Pacer:
    """Evenly spaced starts, weighted by cost (GCRA, burst of one call).

    ``ready_at(cost)`` is the earliest time the next start may go; ``take(now,
    cost)`` records a start. ``adjust(now, delta)`` corrects the cost of a call
    that already started (its real cost turned out ``delta`` more, or less).
    """

    __slots__ = ("_catch_up", "_interval", "per_second", "safety", "tat")

    def __init__(self, per_second: float, *, safety: float = 1.0, catch_up: float = 1.0) -> None:
        self.per_second = per_second
        self.safety = safety
        #: how much of a step a late start may make up (see ``take``)
        self._catch_up = catch_up
        self._interval = safety / per_second
        #: the theoretical arrival time: when the next start may go
        self.tat = -math.inf

    def set_rate(self, per_second: float) -> None:
        """Pace at a new rate from now on; the start already due stays due."""
        self.per_second = per_second
        self._interval = self.safety / per_second

    def ready_at(self) -> float:
        return self.tat

    def take(self, now: float, cost: float = 1.0) -> None:
        step = cost * self._interval
        # A start a little late (the event loop woke us a millisecond after the
        # time) keeps the schedule, else every wake-up's delay would slow the pace
        # down: it makes up to ``catch_up`` of a step of its delay, and loses only the
        # rest. Every start is then at least (k * step - that much) after the k-th
        # start before it, so no window of 1 s or more sees more than the limit (the
        # 3% margin of ``rate``). A start more than 5 ms late follows a pause: it
        # begins a new schedule.
        tat = self.tat
        if now - tat > _SLACK:
            tat = now
        self.tat = max(tat, now - self._catch_up * step) + step

    def adjust(self, now: float, delta: float) -> None:
        """A started call cost ``delta`` more (or, negative, less) than was taken.

        A refund never moves the schedule before ``now``: unused credit is not banked."""
        moved = self.tat + delta * self._interval
        self.tat = moved if delta >= 0 else max(moved, min(self.tat, now))
