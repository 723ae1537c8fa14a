"""The control law of the start rate: how a run slows down when the remote side
pushes back, and how it speeds up again.

Signals: an *overload signal* is an answer that says "too much" — an exception
with ``throttle = True``, or an HTTP status 429, 503 or 529 (see
:func:`overload_of`). Every answer counts, whether or not its call will be
retried.

The law, in plain words (TCP's congestion control, made for request rates):

- **Epochs.** The run is cut into epochs; each reaction starts a new one. A
  signal from a call that started before the last reaction belongs to the
  episode already reacted to and is not new (RFC 6582's recovery point). After a
  cut, calls started before the server's ``Retry-After`` has passed are still
  part of the old episode too: the server said its quota returns then.
- **Cut once per epoch**, by a bounded factor: the new pace is 95% of the rate
  the server *accepted* during the epoch (its goodput: under a rate limit, about
  the limit), never below half the rate we were starting at, never below
  ``FLOOR``.
- **Grow additively per round trip.** Each epoch without a reaction (at least
  ``MIN_EPOCH`` long, or two round-trip times) adds a step: half the way back to
  the rate the server accepted when the overload was met (its limit, as far as
  we know), at least 2.5% of it; once past it, each step doubles the last
  (probing for a limit that was raised: BIC's binary search and max probing),
  until the pace no longer binds or reaches the ceiling.
- **Tell load-independent errors from overload.** After a cut the law watches
  the next epoch: if the share of signals did not fall to half, slowing down did
  not help — those answers do not depend on the load (a flaky proxy, a server
  that answers some share of requests 429 whatever the rate). The cut is undone
  and that share is *tolerated* from then on: only a share significantly above
  it is a reason to slow down (Eifel-style undo, RFC 3522; Google SRE's client
  throttling tolerates a share of rejections in the same spirit).
- **Pause only when the limit is exhausted**: when at least 90% of the latest
  answers (8 to 16 of them, from calls started after the last pause) are
  signals, every start waits for the server's ``Retry-After`` (1 s without one)
  — once: answers to calls started before the pause ended never re-arm it. The
  pace is then set to 80% of what the server took before it ran dry: the calls
  started in the last ``Retry-After`` (at least a second) before the first refusal.
- **Ceilings.** The user's ``rate`` is a ceiling the pace never exceeds
  (and ``concurrency`` one the concurrency never exceeds, elsewhere).

Everything here is arithmetic on times passed in; the asyncio gate that waits
is ``fanout._flow.Flow``.
"""

from __future__ import annotations

import bisect
import collections
import logging
import math
from typing import Any

from fanout._retry import is_throttle

logger = logging.getLogger("fanout.flow")

#: the shortest epoch (s): rate limits are enforced over windows of a second
#: or more, so a change of pace shows in the answers only that much later
MIN_EPOCH = 0.5
#: a cut sets the pace to this share of the rate the server accepted
BETA = 0.95
#: ...but never below this share of the rate we were starting at (a bounded cut)
MAX_CUT = 0.5
#: when the limit is exhausted, the pace is this share of what the server took (an
#: estimate from a burst, so a lower share), and the cut may go down to 1/64
EXHAUSTED_BETA = 0.8
MAX_EXHAUSTED_CUT = 1 / 64
#: the slowest pace (starts per second) a cut may reach
FLOOR = 0.5
#: the smallest step of growth, and the first step of probing past the rate the
#: server accepted at the last overload: this share of that rate
PROBE = 0.025
#: signals among the latest answers that mean "the limit is exhausted" (a pace a
#: little over a sliding window's limit is refused in short blocks: not that)
EXHAUSTED_SHARE = 0.9
EXHAUSTED_LEAST = 8
EXHAUSTED_WINDOW = 16
#: a cut that did not bring the share of signals under this share of what it
#: was is undone, and the share tolerated
UNDO_SHARE = 0.5
#: the longest wait (s) for a Retry-After before judging a cut
MAX_HOLD = 10.0
#: the pause when the limit is exhausted and the server named no Retry-After
DEFAULT_PAUSE = 1.0
#: fewest calls started in an epoch before its share of signals is judged
LEAST_SAMPLES = 20
#: the most start times kept between pauses (to estimate what the server took)
FED_MEMORY = 65536

OVERLOAD_STATUSES = frozenset({429, 503, 529})


def overload_of(exc: BaseException) -> bool:
    """Whether an exception says "too much": ``throttle = True``, or an HTTP status
    429, 503 or 529 on it (``status``/``status_code``, as aiohttp, httpx, requests,
    openai and anthropic exceptions carry it) or on its ``response``."""
    if is_throttle(exc):
        return True
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for name in ("status", "status_code"):
            status = getattr(holder, name, None)
            if isinstance(status, int) and status in OVERLOAD_STATUSES:
                return True
    return False


def _significant(signals: int, starts: int, tolerated: float) -> bool:
    """Whether ``signals`` among ``starts`` calls is more than a ``tolerated`` share
    explains: two standard deviations and one call above it. With nothing
    tolerated, two signals are needed (one in a sample of fewer than 10)."""
    if tolerated <= 0.0:
        return signals >= 2 or (signals == 1 and starts < 10)
    if starts < LEAST_SAMPLES:
        return False
    expected = tolerated * starts
    return signals > expected + 2.0 * math.sqrt(expected * (1.0 - tolerated)) + 1.0


class PaceLaw:
    """The start rate of a run under the law above.

    The gate reports each start (``on_start``) and each answer (``on_answer``)
    once ``active`` — that is, from the first overload signal on — and reads
    ``paused_until`` and ``pace`` to know when the next start may go. Counters
    for the run's summary: ``cuts``, ``undone``, ``pauses``, ``paused_s``.
    """

    def __init__(self, ceiling: float | None, *, max_pause: float = 120.0) -> None:
        #: the user's rate (starts/s), never exceeded
        self.ceiling = ceiling
        self.max_pause = max_pause
        #: the adaptive pace (starts/s); None while it does not bind
        self.pace: float | None = None
        #: whether an overload signal has been seen (the law then watches every answer)
        self.active = False
        #: the share of overload signals that does not depend on the load
        self.tolerated = 0.0
        self.paused_until = -math.inf
        self.srtt: float | None = None
        #: the latest decision and its reason
        self.reason = ""
        # counters
        self.cuts = 0
        self.undone = 0
        self.pauses = 0
        self.paused_s = 0.0
        # the epoch: since `_epoch_start`; its cohort is the calls started from `_measure_from`
        self._epoch_start = 0.0
        self._measure_from = 0.0
        self._starts = 0  # all starts of the epoch
        self._accepted = 0  # answers that were not signals, arrived during the epoch
        self._cohort_starts = 0
        self._cohort_signals = 0
        self._hold = 0.0  # the latest Retry-After seen (s)
        # after a cut: (share of signals before it, pace before it) until judged
        self._probation: tuple[float, float | None] | None = None
        # the rate the server accepted when the last overload was met (its limit, as
        # far as we know), and the epochs spent probing above it
        self._limit: float | None = None
        self._above = 0
        # the starts since the last pause ended (or the run began), and when the
        # first call that met an overload signal since then started
        self._fed_since = 0.0
        self._fed: collections.deque[float] = collections.deque(maxlen=FED_MEMORY)
        self._first_refused = math.inf
        # whether the latest answers (from calls started after `_recent_from`) were signals
        self._recent: collections.deque[bool] = collections.deque(maxlen=EXHAUSTED_WINDOW)
        self._recent_signals = 0
        self._recent_from = -math.inf

    # ------------------------------------------------------------ the gate's calls
    def activate(self, run_start: float, starts: int, accepted: int) -> None:
        """The first signal: the first epoch is the run so far."""
        self.active = True
        self._epoch_start = self._measure_from = self._fed_since = run_start
        self._starts = self._cohort_starts = starts
        self._accepted = accepted
        self._fed.extend([run_start] * min(starts, FED_MEMORY))

    def epoch_length(self) -> float:
        """An epoch: a round trip of the control loop, at least ``MIN_EPOCH``."""
        return max(MIN_EPOCH, 2.0 * (self.srtt or 0.0))

    def on_start(self, now: float) -> None:
        self._starts += 1
        self._fed.append(now)
        if now >= self._measure_from:
            self._cohort_starts += 1

    def on_answer(
        self, now: float, started: float, answers: int, signals: int, retry_after: float | None
    ) -> None:
        """``answers`` calls started at ``started`` ended; ``signals`` of them said overload."""
        accepted = answers - signals
        self._accepted += accepted
        if accepted:
            rtt = now - started
            self.srtt = rtt if self.srtt is None else self.srtt + 0.125 * (rtt - self.srtt)
        if retry_after is not None:
            self._hold = min(retry_after, self.max_pause)
        if started >= self._recent_from:
            if signals and started < self._first_refused:
                self._first_refused = started
            recent = self._recent
            for i in range(min(answers, EXHAUSTED_WINDOW)):
                signal = i < signals
                if len(recent) == EXHAUSTED_WINDOW and recent[0]:
                    self._recent_signals -= 1
                recent.append(signal)
                self._recent_signals += signal
            if signals and self._exhausted():
                self._pause(now)
                return
        if signals and started >= self._measure_from:
            self._cohort_signals += signals
        if now >= self._measure_from + self.epoch_length():
            self._judge(now)

    # ------------------------------------------------------------ the law
    def _exhausted(self) -> bool:
        seen = len(self._recent)
        return seen >= EXHAUSTED_LEAST and self._recent_signals >= EXHAUSTED_SHARE * seen

    def _judge(self, now: float) -> None:
        """The epoch is over: undo the last cut, cut, or grow (once per epoch)."""
        starts, signals = self._cohort_starts, self._cohort_signals
        share = signals / starts if starts else 0.0
        if self._probation is not None:
            before, pace_before = self._probation
            self._probation = None
            if signals >= 3 and share >= UNDO_SHARE * before:
                self.tolerated = max(self.tolerated, share)
                self.undone += 1
                self.pace = pace_before
                self._limit = None
                self._decide(now, f"undo the cut: {signals} of {starts} calls still met an "
                             f"overload signal ({share:.0%}, {before:.0%} before it): they do "
                             f"not depend on the load; tolerating {self.tolerated:.0%}")
                self._new_epoch(now, now)
                return
        if _significant(signals, starts, self.tolerated):
            self._cut(now, share, self._accepted_rate(now),
                      f"{signals} of {starts} calls started in the last "
                      f"{now - self._measure_from:.2f}s met an overload signal "
                      f"(tolerated {self.tolerated:.0%})")
            return
        if self.tolerated and starts >= LEAST_SAMPLES and share < self.tolerated:
            self.tolerated += 0.25 * (share - self.tolerated)
        self._grow(now)

    def _accepted_rate(self, now: float) -> float:
        """What the server accepted per second during the epoch (its goodput)."""
        return self._accepted / max(now - self._epoch_start, 1e-3)

    def _achieved(self, now: float) -> float:
        return self._starts / max(now - self._epoch_start, 1e-3)

    def _current(self, now: float) -> float:
        """The rate the run was starting calls at."""
        current = self._achieved(now)
        for bound in (self.pace, self.ceiling):
            if bound is not None and bound < current:
                current = bound
        return current

    def _cut(self, now: float, share: float, goodput: float, why: str,
             *, least: float = MAX_CUT) -> None:
        """Pace at ``BETA`` times the rate the server accepted (``goodput``), bounded."""
        current = self._current(now)
        new = max(BETA * min(goodput, current), least * current, FLOOR)
        old = self.pace
        self._probation = (share, old)
        self._limit = min(goodput, current)
        self._above = 0
        self.pace = new
        self.cuts += 1
        self._decide(now, f"cut the pace {_rate(current)} -> {_rate(new)}: {why}")
        self._new_epoch(now, now + min(self._hold, MAX_HOLD))

    def _grow(self, now: float) -> None:
        pace = self.pace
        if pace is None:
            self._new_epoch(now, now)
            return
        limit = self._limit or pace
        if pace < limit:  # halfway back to where the overload was met, at least a step
            grown = pace + max(PROBE * limit, (limit - pace) / 2)
        else:  # past it: probe, each step twice the last
            grown = pace + PROBE * limit * 2.0 ** min(self._above, 10)
            self._above += 1
        achieved = self._achieved(now)
        if self.ceiling is not None and grown >= self.ceiling:
            self.pace = None
            self._decide(now, f"grow the pace {_rate(pace)} -> the ceiling {_rate(self.ceiling)}")
        elif grown > 2.0 * max(achieved, limit):
            self.pace = None
            self._decide(now, f"stop pacing at {_rate(pace)}: the run starts only "
                         f"{_rate(achieved)}, the pace no longer binds")
        else:
            self.pace = grown
            self._decide(now, f"grow the pace {_rate(pace)} -> {_rate(grown)}: no overload "
                         f"for an epoch")
        self._new_epoch(now, now)

    def _pause(self, now: float) -> None:
        """The limit is exhausted: every start waits for the Retry-After, once."""
        wait = min(self._hold or DEFAULT_PAUSE, self.max_pause)
        until = now + wait
        seen, signals = len(self._recent), self._recent_signals
        # what the server took: the calls that started in the `span` before the first
        # refused one (since the last pause), where `span` is the time it needs to take
        # more, at least a second
        first = min(self._first_refused, now)
        span = max(wait, 1.0)
        fed = self._fed
        taken = bisect.bisect_left(fed, first) - bisect.bisect_left(fed, first - span)
        estimate = taken / span
        self.paused_until = max(self.paused_until, until)
        self.pauses += 1
        self.paused_s += wait
        self._recent.clear()
        self._recent_signals = 0
        self._recent_from = self._fed_since = until
        self._fed.clear()
        self._first_refused = math.inf
        self._cut(now, 1.0, estimate * EXHAUSTED_BETA / BETA,
                  f"{signals} of the latest {seen} answers were overload signals: the limit "
                  f"is exhausted; every start waits {wait:g}s", least=MAX_EXHAUSTED_CUT)
        self._new_epoch(now, until)

    def _new_epoch(self, now: float, measure_from: float) -> None:
        self._epoch_start = now
        self._measure_from = measure_from
        self._starts = 0
        self._accepted = 0
        self._cohort_starts = 0
        self._cohort_signals = 0

    def _decide(self, now: float, why: str) -> None:
        self.reason = why
        logger.debug("flow control at %.3f: %s", now, why)

    def state(self) -> dict[str, Any]:
        """The law's counters and pace, plain data."""
        return {
            "pace": None if self.pace is None else round(self.pace, 3),
            "cuts": self.cuts,
            "undone": self.undone,
            "tolerated_share": round(self.tolerated, 4),
            "pauses": self.pauses,
            "paused_s": round(self.paused_s, 3),
        }


def _rate(per_second: float) -> str:
    return f"{per_second:.3g}/s" if per_second < 100 else f"{per_second:,.0f}/s"
