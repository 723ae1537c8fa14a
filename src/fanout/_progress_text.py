"""What a progress display shows, as plain data and as plain text.

A ``Snapshot`` is read from the run's counters once per tick; each display (terminal bar,
log lines, notebook) renders the same snapshot, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from fanout._progress_rate import (
    OVERALL_LABEL,
    RECENT_LABEL,
    format_duration,
    format_rate,
)


@dataclass(frozen=True)
class Snapshot:
    """A run's progress at one moment. ``rate`` is the recent rate while the run goes on and
    the overall rate once it ended (``final``); ``retried`` is None where retries do not
    apply."""

    description: str
    done: int
    total: int | None
    failed: int
    retried: int | None
    stuck: int
    details: str
    elapsed: float
    rate: float | None
    eta: float | None
    final: bool = False

    @property
    def fraction(self) -> float | None:
        """Done over total, within 0..1; None without a total."""
        if not self.total:
            return None if self.total is None else 1.0
        return min(1.0, self.done / self.total)


def count_text(snap: Snapshot) -> str:
    """``720/1,000 (72%)``, or ``720`` when the total is not known yet."""
    if snap.total is None:
        return f"{snap.done:,}"
    fraction = snap.fraction
    percent = f" ({fraction:.0%})" if fraction is not None else ""
    return f"{snap.done:,}/{snap.total:,}{percent}"


def rate_text(snap: Snapshot) -> str:
    """``4,712/s recent`` while running, ``3,816/s overall`` at the end."""
    return f"{format_rate(snap.rate)} {OVERALL_LABEL if snap.final else RECENT_LABEL}"


def failed_text(snap: Snapshot) -> str:
    return f"{snap.failed:,} failed"


def extra_texts(snap: Snapshot) -> list[str]:
    """Retries, calls stuck past their timeout, and the run's own details, when there are."""
    texts = []
    if snap.retried is not None:
        texts.append(f"{snap.retried:,} retr{'y' if snap.retried == 1 else 'ies'}")
    if snap.stuck:
        texts.append(f"{snap.stuck:,} stuck past timeout")
    if snap.details:
        texts.append(snap.details)
    return texts


def status_parts(snap: Snapshot) -> list[str]:
    """The status, most telling first. While running: ``720/1,000 (72%)``, ``4,712/s
    recent``, ``ETA 0:00:05``, ``3 failed``, extras, ``elapsed 0:00:12``; at the end:
    ``1,000/1,000 (100%) in 0:00:15``, ``3,816/s overall``, ``3 failed``, extras."""
    if snap.final:
        head = [f"{count_text(snap)} in {format_duration(snap.elapsed)}", rate_text(snap)]
        return [*head, failed_text(snap), *extra_texts(snap)]
    return [
        count_text(snap),
        rate_text(snap),
        f"ETA {format_duration(snap.eta)}",
        failed_text(snap),
        *extra_texts(snap),
        f"elapsed {format_duration(snap.elapsed)}",
    ]


def plain_line(snap: Snapshot) -> str:
    """One line of plain text (no control characters), for logs and notebooks.

    ``fanout work: 720/1,000 (72%), 4,712/s recent, ETA 0:00:05, 3 failed, 12 retries,
    elapsed 0:00:12``; at the end ``fanout work: finished 1,000/1,000 (100%) in 0:00:15,
    3,816/s overall, 3 failed, 12 retries``.
    """
    head = snap.description if snap.description == "fanout" else f"fanout {snap.description}"
    if snap.final:
        ended = snap.total is not None and snap.done >= snap.total
        head = f"{head}: {'finished' if ended else 'stopped at'}"
    else:
        head += ":"
    return _printable(f"{head} {', '.join(status_parts(snap))}")


def text_bar(fraction: float | None, width: int = 24) -> str:
    """``█████████░░░░░`` filled to ``fraction``; a row of ``░`` without a total."""
    filled = round((fraction or 0.0) * width)
    return "█" * filled + "░" * (width - filled)


def _printable(text: str) -> str:
    # the description and details come from user code: keep control characters out of logs
    return "".join(ch if ch.isprintable() else " " for ch in text)
