"""``concurrency="auto"``: find the concurrency where throughput stops rising.

For servers that degrade by latency rather than by 429 (a database, an
inference server with a queue): past their capacity, more calls at once only
queue, so each call takes longer and throughput stays flat. The limit follows
TCP Vegas, as in Netflix's ``VegasLimit``: once per window (about one round trip:
as many answers as the limit, at least ``MIN_SAMPLES``) it compares the window's
mean latency with the latency without load (the lowest window mean seen lately),
which by Little's law says how many calls are queued::

    queued = limit * (1 - rtt_noload / rtt)

(The mean, not the median: past a server's capacity its latencies are
bimodal — served at once, or after a whole service time — and the median
jumps between the two.) Few queued (at most ``log10(limit)``): grow fast
(+4 log10(limit)); up to 2 log10(limit): grow by log10(limit); more than
4 log10(limit): shrink by half the excess over 2 log10(limit), at least
log10(limit). It never grows while the run keeps fewer than half the limit busy
(the server is not what limits it), and never passes the user's ceiling. A call
that timed out cuts the limit by 10%, once per window.

Every ``PROBE_INTERVAL`` one window runs at half the limit, so that the latency
without load is measured again: otherwise a limit that always queues would
learn its own queue as "no load" and creep up.
"""

from __future__ import annotations

import collections
import logging
import math
import statistics

logger = logging.getLogger("fanout.flow")

INITIAL = 4
MIN_SAMPLES = 8
PROBE_INTERVAL = 20.0
#: how long a window's mean counts towards the latency without load
MEMORY = 2.5 * PROBE_INTERVAL


class AutoLimit:
    """The concurrency limit under ``concurrency="auto"``, at most ``ceiling``."""

    def __init__(self, ceiling: int, start: float) -> None:
        self.ceiling = ceiling
        self.limit = float(min(ceiling, INITIAL))
        self.noload: float | None = None
        self.reason = ""
        self._samples: list[float] = []
        self._busiest = 0
        self._dropped = False
        self._history: collections.deque[tuple[float, float]] = collections.deque()
        self._next_probe = start + PROBE_INTERVAL
        self._probing = False

    @property
    def current(self) -> int:
        """How many calls may run at once now."""
        limit = max(1, int(self.limit))
        return max(1, limit // 2) if self._probing else limit

    def sample(self, now: float, rtt: float, in_flight: int) -> None:
        """A call answered after ``rtt`` seconds with ``in_flight`` calls running."""
        self._samples.append(rtt)
        if in_flight > self._busiest:
            self._busiest = in_flight
        if len(self._samples) >= max(MIN_SAMPLES, self.current):
            self._update(now)

    def drop(self, now: float) -> None:
        """A call timed out: shrink by 10%, once per window."""
        if not self._dropped:
            self._dropped = True
            self._set(now, self.limit * 0.9, "a call timed out")

    def _update(self, now: float) -> None:
        rtt = statistics.fmean(self._samples)
        busiest, probing = self._busiest, self._probing
        self._samples = []
        self._busiest = 0
        self._dropped = False
        history = self._history
        history.append((now, rtt))
        while history[0][0] < now - MEMORY:
            history.popleft()
        noload = self.noload = min(r for _, r in history)
        if probing:
            self._probing = False
            self._next_probe = now + PROBE_INTERVAL
            return
        if now >= self._next_probe:
            self._probing = True
            return
        limit = self.limit
        queued = limit * (1.0 - noload / rtt) if rtt > 0 else 0.0
        log = max(1.0, math.log10(limit))
        busy = busiest >= limit / 2
        why = (f"mean latency {rtt * 1000:.1f} ms, {noload * 1000:.1f} ms without load: "
               f"about {queued:.1f} of {limit:.0f} calls queued")
        if queued <= log and busy:
            self._set(now, limit + 4 * log, why)
        elif queued < 2 * log and busy:
            self._set(now, limit + log, why)
        elif queued > 4 * log:
            self._set(now, limit - max(log, (queued - 2 * log) / 2), why)

    def _set(self, now: float, limit: float, why: str) -> None:
        new = min(float(self.ceiling), max(1.0, limit))
        if int(new) != int(self.limit):
            self.reason = f"concurrency {int(self.limit)} -> {int(new)}: {why}"
            logger.debug("flow control at %.3f: %s", now, self.reason)
        self.limit = new
