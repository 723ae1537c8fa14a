"""How many tiny calls to hand to the executor at once.

Handing a call over costs about the same whatever the call (a queue put, a
thread or process wake-up). When calls are measured to be much shorter than
that, several items travel as one job: the batch grows (doubling) until a job
lasts about the executor's ``batch_target`` seconds, never beyond its
``max_batch``, and never so big that the workers would not share the window
fairly. Never with a per-call timeout or a rate limit, which are per call.
"""

from __future__ import annotations

from collections.abc import Sequence


class BatchSizer:
    """The size of the next job, tuned from the measured time per item."""

    def __init__(self, target: float, max_batch: int, window: int, concurrency: int) -> None:
        self.target = target
        self.max_batch = max_batch
        self._fair = max(1, (window // 2) // concurrency)
        self._per_item = 0.0
        #: items in the next job
        self.size = 1

    def observe(self, elapsed: Sequence[float]) -> None:
        """The per-item times of a job's first attempt."""
        sample = elapsed[:: len(elapsed) // 64 + 1]  # summing 8,192 floats costs a batch 5%
        per_item = sum(sample) / len(sample)
        old = self._per_item
        self._per_item = per_item if old == 0.0 else 0.7 * old + 0.3 * per_item
        want = int(self.target / max(self._per_item, 1e-9))
        want = max(1, min(want, self.max_batch, self._fair))
        self.size = min(want, self.size * 2) if want > self.size else want
