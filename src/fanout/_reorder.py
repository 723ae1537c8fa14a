"""Results on their way out: in input order through a bounded reorder buffer, or
as they finish.

The buffer keeps runs of consecutive results (a batch of tiny calls is one
entry, not one per item), keyed by the index of their first item. The run's
window bounds how far ahead of the oldest unfinished item results can get, so
the buffer is bounded too.
"""

from __future__ import annotations

from typing import Any

from fanout._result import Result


class Reorder:
    """Collects finished results; ``ready`` holds those that may be handed out."""

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self.ready: list[Result[Any]] = []
        self._waiting: dict[int, list[Result[Any]]] = {}
        self._next = 0

    def add(self, first: int, results: list[Result[Any]]) -> None:
        """Results of consecutive items starting at index ``first``."""
        if not self.ordered:
            self.ready.extend(results)
        elif first == self._next:
            ready = self.ready
            ready.extend(results)
            nxt = first + len(results)
            waiting = self._waiting
            while nxt in waiting:
                run = waiting.pop(nxt)
                ready.extend(run)
                nxt += len(run)
            self._next = nxt
        else:
            self._waiting[first] = results

    def take(self) -> list[Result[Any]]:
        """The results ready to hand out, in order; the buffer keeps the rest."""
        ready, self.ready = self.ready, []
        return ready

    def salvage(self) -> list[Result[Any]]:
        """Every finished result not handed out yet, by index (after a stop)."""
        out = self.take()
        for run in self._waiting.values():
            out.extend(run)
        self._waiting = {}
        out.sort(key=lambda r: r.index)
        return out
