"""The one rate computation of a run, for the progress display, its ETA and the summaries.

Two rates, each labelled where it is shown: the *recent* rate, over the last few seconds
(what the bar and the periodic log lines show while a run goes on, and what the ETA is
computed from), and the *overall* rate, items over the whole run's wall time (the last
progress line and the end-of-run summaries). Both are formatted by ``format_rate``, which
never prints ``0.0/s`` for a rate above zero: slow rates are given per minute or per hour.
"""

from __future__ import annotations

import collections

#: the recent rate covers at least this many seconds...
RECENT_WINDOW_S = 5.0
#: ...and at least this many finished items, when the run has that many (slow calls)
RECENT_MIN_ITEMS = 5
RECENT_LABEL = "recent"
OVERALL_LABEL = "overall"


class RateMeter:
    """Items per second, fed ``sample(now, done)`` from one thread, with the times given.

    ``recent`` is the rate over the last ``window`` seconds, stretched back far enough to
    cover ``min_items`` finished items, so that calls slower than the window do not read as
    a rate of zero between two completions (a stalled run still decays towards zero);
    ``overall`` is the rate over the whole run.
    """

    def __init__(
        self,
        start: float,
        done: int = 0,
        window: float = RECENT_WINDOW_S,
        min_items: int = RECENT_MIN_ITEMS,
    ) -> None:
        self.start = start
        self.window = window
        self.min_items = min_items
        self._first_done = done
        self._now = start
        self._done = done
        # (time, done) each time `done` changed; the first one is the recent rate's anchor
        self._changes: collections.deque[tuple[float, int]] = collections.deque([(start, done)])

    def sample(self, now: float, done: int) -> None:
        """Record that ``done`` items had finished at time ``now`` (neither decreases)."""
        self._now = now
        changes = self._changes
        if done != self._done:
            self._done = done
            changes.append((now, done))
        # drop the anchor while the next change is old enough and far enough back to be one
        while (
            len(changes) > 1
            and changes[1][0] <= now - self.window
            and done - changes[1][1] >= self.min_items
        ):
            changes.popleft()

    def recent(self) -> float | None:
        """Items per second lately; None before any item finished."""
        then, done_then = self._changes[0]
        if self._done == self._first_done or self._now <= then:
            return None
        return (self._done - done_then) / (self._now - then)

    def overall(self) -> float | None:
        """Items per second since ``start``; None before any time passed."""
        return overall_rate(self._done - self._first_done, self._now - self.start)

    def eta(self, total: int | None) -> float | None:
        """Seconds until ``total`` items are done at the recent rate; None when unknown
        (no total, or nothing finished yet)."""
        if total is None:
            return None
        remaining = total - self._done
        if remaining <= 0:
            return 0.0
        rate = self.recent()
        return remaining / rate if rate else None


def overall_rate(done: int, seconds: float) -> float | None:
    """Items per second over a whole run; None when no time passed."""
    return done / seconds if seconds > 0 else None


def format_rate(per_second: float | None) -> str:
    """``3,816/s``, ``12.5/s``, ``42.0/min``, ``3.0/h``; ``-/s`` when unknown.

    Three significant digits or more; a rate under 1/s is given per minute (under 1/min, per
    hour), so a positive rate never reads ``0.0/s``.
    """
    if per_second is None:
        return "-/s"
    if per_second == 0:
        return "0/s"
    for unit, factor in (("s", 1), ("min", 60), ("h", 3600)):
        value = per_second * factor
        if value >= 1 or unit == "h":
            break
    if value >= 100:
        return f"{value:,.0f}/{unit}"
    if value >= 0.1:
        return f"{value:.1f}/{unit}"
    return f"<0.1/{unit}"


def overall_rate_text(done: int, seconds: float) -> str:
    """The whole-run rate, labelled, for end-of-run summaries: ``3,816/s overall``."""
    return f"{format_rate(overall_rate(done, seconds))} {OVERALL_LABEL}"


def format_duration(seconds: float | None) -> str:
    """``0:01:05``; ``-:--:--`` when unknown."""
    if seconds is None:
        return "-:--:--"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
