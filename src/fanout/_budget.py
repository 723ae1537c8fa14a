"""Budgets by weight: ``budget="150000/min", cost=estimate_tokens``.

Every start of an item (retries included) is charged ``cost(item)`` against the
budget, a :class:`~fanout._limits.Pacer` shared by all workers: starts are spaced
by their cost, so the summed cost of the calls started in any window of the
budget's period stays within the budget, plus the cost of one call.

A call can correct its estimate once it knows what it really cost (an LLM
answer's ``usage``) with :func:`charge`, from inside the call: the difference
is charged (or given back) at once. That needs to know which call is running:
while a run has a ``cost``, each call runs inside a *ticket* (a context
variable set around the call), which works wherever the call runs in this
process — on the event loop (async mode), on a pool thread (thread mode, and a
sync function in async mode), inline (sequential). A call in a worker process
(process mode) has no ticket: :func:`charge` there returns False and the
estimate stands.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Callable
from typing import Any, Protocol

from fanout._errors import ConfigError
from fanout._limits import BUDGET_SAFETY, Pacer


class _Charged(Protocol):
    """The run a ticket reports to (``fanout._flow.Flow``)."""

    def correct(self, delta: float) -> None: ...

    def cost_of_item(self, item: Any) -> float: ...


class Ticket:
    """The call now running, as seen from inside it."""

    __slots__ = ("charged", "item", "run")

    def __init__(self, run: _Charged, item: Any) -> None:
        self.run = run
        self.item = item
        #: what this call has been charged so far (None: its estimate)
        self.charged: float | None = None


_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "fanout_call", default=None
)


def current_ticket() -> Ticket | None:
    """The ticket of the call running here, if it runs under a cost-aware run."""
    return _TICKET.get()


def check_cost(value: Any, what: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ConfigError(f"{what} must be a number >= 0 (got {value!r})")
    return float(value)


def charge(actual: float) -> bool:
    """Say what the call now running really cost, in the units of its run's ``cost``
    (for example the ``usage.total_tokens`` of an LLM answer).

    The run's ``budget`` is charged the difference from the estimate ``cost(item)``
    at once (a smaller real cost gives the difference back). Call it from inside
    the function that ``fanout.map`` & co. run, at most once per call (a second call
    replaces the first). Returns False, and does nothing, outside such a call: no
    run with ``cost=``, or a call in a worker process (process mode).
    """
    ticket = _TICKET.get()
    if ticket is None:
        return False
    actual = check_cost(actual, "fanout.charge(actual)")
    run = ticket.run
    before = ticket.charged
    if before is None:
        before = run.cost_of_item(ticket.item)
    ticket.charged = actual
    run.correct(actual - before)
    return True


class Budget:
    """The budget of a run: a weighted pacer, corrected from any thread."""

    def __init__(self, per_second: float) -> None:
        self.pacer = Pacer(per_second, safety=BUDGET_SAFETY)
        self._lock = threading.Lock()
        self._pending = 0.0
        self._corrected = 0.0

    def correct(self, delta: float) -> None:
        """Charge ``delta`` more (or less) for a call already started; any thread."""
        with self._lock:
            self._pending += delta

    @property
    def corrected(self) -> float:
        """The corrections received: real costs minus estimates, summed."""
        return self._corrected + self._pending

    def _settle(self, now: float) -> None:
        if self._pending:
            with self._lock:
                delta, self._pending = self._pending, 0.0
            self._corrected += delta
            self.pacer.adjust(now, delta)

    def ready_at(self, now: float) -> float:
        self._settle(now)
        return self.pacer.tat

    def take(self, now: float, cost: float) -> None:
        self.pacer.take(now, cost)


def with_tickets(fn: Callable[..., Any], run: _Charged, is_async: bool) -> Callable[..., Any]:
    """``fn`` wrapped so that each call runs inside a ticket (see the module docs)."""
    return _AsyncTicketed(fn, run) if is_async else _Ticketed(fn, run)


class _Ticketed:
    def __init__(self, fn: Callable[..., Any], run: _Charged) -> None:
        self.fn = fn
        self.run = run
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, item: Any) -> Any:
        token = _TICKET.set(Ticket(self.run, item))
        try:
            return self.fn(item)
        finally:
            _TICKET.reset(token)


class _AsyncTicketed(_Ticketed):
    async def __call__(self, item: Any) -> Any:
        token = _TICKET.set(Ticket(self.run, item))
        try:
            return await self.fn(item)
        finally:
            _TICKET.reset(token)
