"""The server's own numbers: models of the limits a server announces in its answers.

A call (``fanout http`` reading rate-limit headers) reports what the server said
about one of its limits as a :class:`QuotaReport`; the run keeps a model of that
limit and starts a call only when the model says it fits, instead of waiting for
429s. Two kinds of limit, which mean different things:

``continuous`` (OpenAI ``x-ratelimit-*``, Anthropic ``anthropic-ratelimit-*``)
    A bucket refilled continuously at ``limit / period`` (the limit is per
    minute); ``reset`` is the time until the bucket is *full* again. At 0
    remaining the right pace is the refill rate: a call fits again as soon as
    its cost has flowed back in — never sit out the whole reset.
``window`` (the IETF draft's ``RateLimit-*``, GitHub-style ``x-ratelimit-*``)
    A quota per window; ``reset`` is when the window's quota comes back. At 0
    remaining, waiting for the reset is right.

The model counts what *we* started after the call whose answer carried a report
(the server had not seen those yet; nor, perhaps, those started up to ``REORDER``
before it, which may have reached it later), and drops a report from a call that
started before the one it already follows (an answer overtaken by a fresher one).
Times are passed in; nothing here reads a clock.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

Resource = Literal["requests", "tokens"]
Refill = Literal["continuous", "window"]

#: refill 2% slower than announced: our clock and the server's drift apart
_REFILL_SAFETY = 1.02
#: requests sent this close together (s) may reach the server in either order
REORDER = 0.002
#: a window used up, without a reset said: one call a second finds out when it is back
UNKNOWN_RESET = 1.0


@dataclass(frozen=True, slots=True)
class QuotaReport:
    """What an answer said about one limit of the server."""

    resource: Resource
    refill: Refill
    remaining: float
    #: seconds from the answer: until the bucket is full (continuous), or until
    #: the quota comes back (window)
    reset: float | None
    #: continuous: units per ``period``; window: the quota of a window (None if not said)
    limit: float | None = None
    #: continuous: the seconds ``limit`` is per; window: the window's length, if said
    period: float | None = 60.0


class Ledger:
    """The cumulative cost of our starts, to tell what a server could not have
    counted yet when it answered: the cost of the calls started after a given time."""

    def __init__(self, keep: int = 8192) -> None:
        self._times: list[float] = []
        self._totals: list[float] = []
        self._base = 0.0  # the total before the first entry kept
        self._keep = keep
        self.total = 0.0

    def add(self, now: float, cost: float) -> None:
        self.total += cost
        self._times.append(now)
        self._totals.append(self.total)
        if len(self._times) > 2 * self._keep:
            self._forget(len(self._times) - self._keep)

    def after(self, started: float) -> float:
        """The cost of the starts strictly after ``started`` (all kept ones if older)."""
        i = bisect.bisect_right(self._times, started)
        before = self._totals[i - 1] if i else self._base
        return self.total - before

    def forget_before(self, started: float) -> None:
        """Starts before ``started`` will not be asked about again."""
        self._forget(bisect.bisect_left(self._times, started))

    def _forget(self, n: int) -> None:
        if n > 0:
            self._base = self._totals[n - 1]
            del self._times[:n]
            del self._totals[:n]


class ServerQuota:
    """Our model of one announced limit: when a call of some cost fits."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.refill: Refill = "continuous"
        self.ledger = Ledger()
        self._source = -math.inf  # when the call whose report we follow started
        self._level = math.inf  # units left at `_at`
        self._at = 0.0
        self._rate = 0.0  # continuous: units back per second
        self._capacity = math.inf
        self._limit: float | None = None  # window: the quota when it comes back
        self._period: float | None = None
        self._reset_at = math.inf  # window: when the quota comes back
        #: the latest report followed, for the summary
        self.report: QuotaReport | None = None

    def observe(self, report: QuotaReport, started: float, now: float) -> bool:
        """Follow ``report``, from an answer to a call started at ``started``; False if
        a fresher report is already followed."""
        if started < self._source:
            return False
        self._source = started
        # calls started shortly before this one may reach the server after it
        unseen = self.ledger.after(started - REORDER)
        self.ledger.forget_before(started - REORDER)
        self.report = report
        self.refill = report.refill
        self._at = now
        self._level = report.remaining - unseen
        if report.refill == "continuous":
            if report.limit and report.period:
                announced = report.limit / report.period
                self._rate = announced / _REFILL_SAFETY
                reset = report.reset if report.reset is not None else 0.0
                self._capacity = max(report.remaining + reset * announced, 1.0)
            else:
                self._rate, self._capacity = 0.0, math.inf
        else:
            self._limit = report.limit
            self._period = report.period
            self._reset_at = now + report.reset if report.reset is not None else math.inf
        return True

    def _roll(self, now: float) -> None:
        """A window whose quota came back by ``now``."""
        while now >= self._reset_at:
            self._level = self._limit if self._limit is not None else math.inf
            self._reset_at = (self._reset_at + self._period
                              if self._period and self._limit is not None else math.inf)

    def level(self, now: float) -> float:
        if self.refill == "window":
            self._roll(now)
            return self._level
        return min(self._capacity, self._level + (now - self._at) * self._rate)

    def ready_at(self, now: float, cost: float) -> float:
        """The earliest time a call of ``cost`` fits (``now`` if it does)."""
        if cost <= 0.0:
            return now
        level = self.level(now)
        if level >= cost:
            return now
        if self.refill == "window":
            if self._reset_at == math.inf:  # no reset said: look again in a while
                return now + UNKNOWN_RESET
            return self._reset_at if self._reset_at > now else now
        if cost > self._capacity or self._rate <= 0.0:
            return now  # it can never fit: the server will say so, not us
        return now + (cost - level) / self._rate

    def take(self, now: float, cost: float) -> None:
        if self.refill == "window":
            self._roll(now)
        else:
            self._level = self.level(now)
            self._at = now
        self._level -= cost
        self.ledger.add(now, cost)
