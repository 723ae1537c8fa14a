"""Flow control: the gate every call start passes, and what it learns from outcomes.

The orchestrator never branches on the kind of limit. Before a call starts it
asks the gate (``try_start(items)``, else ``await start(items)``); when the
call's outcome is in it reports it (``observe``: when the call started and how
it ended); when the call's slot is free again it says so (``release``). One
controller behind this protocol, :class:`Flow`, owns every limit of the run:

- the concurrency: the user's ``concurrency``, or under ``concurrency="auto"`` a
  latency-driven limit up to it (``fanout._concurrency``);
- the start rate: the user's ``rate`` as a ceiling (``fanout._limits.Pacer``),
  and under it an adaptive pace that reacts to overload signals (429, 503,
  ``exc.throttle``) once per epoch (``fanout._control``);
- the ``budget`` by weight (``cost(item)``, e.g. estimated tokens), corrected by
  ``fanout.charge(actual)`` from inside a call (``fanout._budget``);
- the server's own numbers: calls that read rate-limit headers (``fanout http``)
  hand them to ``report`` and starts wait until they fit (``fanout._quota``);
  ``server_limits`` known in advance stand for them until the server's first report.

A call waits until every one of them allows it. For the progress display and the
summaries, ``details()`` says in a few words what binds now and ``state()`` gives
the numbers; the decisions are logged at DEBUG on the ``fanout.flow`` logger,
each with its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from fanout._budget import Budget, check_cost, current_ticket, with_tickets
from fanout._concurrency import AutoLimit
from fanout._control import PaceLaw, overload_of
from fanout._errors import CallTimeout, ConfigError
from fanout._limits import RATE_CATCH_UP, RATE_SAFETY, Pacer
from fanout._quota import QuotaReport, Resource, ServerQuota
from fanout._retry import retry_after_of
from fanout.executors._calls import Outcome


class FlowControl(Protocol):
    """What the orchestrator needs from a flow controller."""

    def try_start(self, items: list[Any]) -> bool:
        """Take a slot and start the call of ``items`` at once if allowed, without
        waiting (the hot path)."""
        ...

    async def start(self, items: list[Any]) -> None:
        """Wait until the call of ``items`` may start, and take its slot."""
        ...

    def observe(self, started: float, outcome: Outcome) -> None:
        """A call that started at ``started`` (loop time) ended with ``outcome``."""
        ...

    def release(self) -> None:
        """A call's slot is free again (after ``observe``; later for an abandoned call)."""
        ...

    def details(self) -> str:
        """What limits the run now, in a few words (the progress display)."""
        ...

    def state(self) -> dict[str, Any]:
        """The controller's numbers now, plain data (the summaries)."""
        ...


class Flow:
    """The one flow controller of a run (see the module docs)."""

    def __init__(
        self,
        *,
        concurrency: int,
        rate: float | None = None,
        auto: bool = False,
        budget: float | None = None,
        cost: Callable[[Any], float] | None = None,
        max_pause: float = 120.0,
        server_limits: Iterable[tuple[Resource, float]] = (),
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        # the loop's time; another clock only for tests that never await start()
        self._clock = clock if clock is not None else self._loop.time
        self._begun = self._clock()
        #: the user's concurrency: a ceiling
        self.ceiling = concurrency
        self._auto = AutoLimit(concurrency, self._begun) if auto else None
        #: how many calls may run at once now
        self.limit = self._auto.current if self._auto is not None else concurrency
        #: calls started and not yet released
        self.running = 0
        self.starts = 0
        self.answers = 0
        #: answers that were overload signals
        self.signals = 0
        self._rate = rate
        self._ceiling = (Pacer(rate, safety=RATE_SAFETY, catch_up=RATE_CATCH_UP)
                         if rate else None)
        self._law = PaceLaw(rate / RATE_SAFETY if rate else None, max_pause=max_pause)
        self._pacer: Pacer | None = None
        self._budget = Budget(budget) if budget else None
        self._cost = cost
        self._quotas: dict[str, ServerQuota] = {}
        #: whether a start must ask what time it may go
        self._timed = self._ceiling is not None or self._budget is not None
        #: whether every answer is looked at (not only the failed ones)
        self._watch = self._auto is not None
        self._waiting = 0
        self._lock = asyncio.Lock()
        self._wakeup: asyncio.Future[None] | None = None
        self._costed: list[Any] | None = None
        self._cost_now = 0.0
        for resource, per_second in server_limits:
            self._know(resource, per_second)

    # ------------------------------------------------------------ starting
    def try_start(self, items: list[Any]) -> bool:
        if self._waiting or self.running >= self.limit:
            return False
        if self._timed:
            now = self._clock()
            cost = self._cost_of(items)
            if self._ready_at(now, cost) > now:
                return False
            self._take(now, cost)
        self.running += 1
        self.starts += 1
        return True

    async def start(self, items: list[Any]) -> None:
        self._waiting += 1
        try:
            async with self._lock:  # FIFO: waiters start in arrival order
                while True:
                    if self.running >= self.limit:
                        await self._sleep(None)
                        continue
                    if self._timed:
                        now = self._clock()
                        cost = self._cost_of(items)
                        at = self._ready_at(now, cost)
                        if at > now:
                            await self._sleep(at)
                            continue
                        self._take(now, cost)
                    self.running += 1
                    self.starts += 1
                    return
        finally:
            self._waiting -= 1

    def release(self) -> None:
        self.running -= 1
        if self._waiting:
            self._poke()

    async def _sleep(self, until: float | None) -> None:
        """Wait until ``until`` (loop time), or until something changed (a slot freed,
        a limit moved)."""
        wakeup = self._wakeup = self._loop.create_future()
        timer = self._loop.call_at(until, _wake, wakeup) if until is not None else None
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def _poke(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _cost_of(self, items: list[Any]) -> float:
        if self._cost is None:
            return 0.0
        if items is self._costed:  # the same call asked again after try_start
            return self._cost_now
        total = 0.0
        for item in items:
            total += self.cost_of_item(item)
        self._costed, self._cost_now = items, total
        return total

    def cost_of_item(self, item: Any) -> float:
        """``cost(item)``, checked."""
        assert self._cost is not None
        try:
            value = self._cost(item)
        except Exception as exc:
            raise ConfigError(
                f"cost({_short(item)}) raised {type(exc).__name__}: {exc} (cost must "
                "return a number >= 0 for every item)"
            ) from exc
        return check_cost(value, f"cost({_short(item)})")

    def _ready_at(self, now: float, cost: float) -> float:
        at = self._law.paused_until
        for pacer in (self._ceiling, self._pacer):
            if pacer is not None and pacer.tat > at:
                at = pacer.tat
        if self._budget is not None:
            at = max(at, self._budget.ready_at(now))
        for quota in self._quotas.values():
            at = max(at, quota.ready_at(now, 1.0 if quota.resource == "requests" else cost))
        return at

    def _take(self, now: float, cost: float) -> None:
        for pacer in (self._ceiling, self._pacer):
            if pacer is not None:
                pacer.take(now)
        if self._budget is not None:
            self._budget.take(now, cost)
        for quota in self._quotas.values():
            quota.take(now, 1.0 if quota.resource == "requests" else cost)
        if self._law.active:
            self._law.on_start(now)

    # ------------------------------------------------------------ outcomes
    def observe(self, started: float, outcome: Outcome) -> None:
        values, _, errors = outcome
        n = len(values)
        self.answers += n
        if errors is None:
            if self._watch:
                self._answered(started, n, 0, None, False)
            return
        signals = 0
        retry_after: float | None = None
        timed_out = False
        for error in errors.values():
            if overload_of(error):
                signals += 1
                after = retry_after_of(error)
                if after is not None and (retry_after is None or after > retry_after):
                    retry_after = after
            elif isinstance(error, CallTimeout):
                timed_out = True
        if signals:
            self.signals += signals
            law = self._law
            if not law.active:
                before = (self.answers - n) - (self.signals - signals)
                law.activate(self._begun, self.starts, before)
                self._watch = self._timed = True
        if self._watch:
            self._answered(started, n, signals, retry_after, timed_out)

    def _answered(
        self, started: float, n: int, signals: int, retry_after: float | None, timed_out: bool
    ) -> None:
        now = self._clock()
        law = self._law
        if law.active:
            pace = law.pace
            law.on_answer(now, started, n, signals, retry_after)
            if law.pace != pace:
                self._set_pace(law.pace)
        auto = self._auto
        if auto is not None:
            if timed_out:
                auto.drop(now)
            elif signals < n:
                auto.sample(now, now - started, self.running)
            limit = auto.current
            if limit != self.limit:
                if limit > self.limit:
                    self._poke()
                self.limit = limit

    def _set_pace(self, pace: float | None) -> None:
        if pace is None:
            self._pacer = None
        elif self._pacer is None:
            self._pacer = Pacer(pace)
        else:
            self._pacer.set_rate(pace)
        self._poke()

    # ------------------------------------------------------------ from inside calls
    def now(self) -> float:
        """The run's clock (the loop's time)."""
        return self._clock()

    def report(self, reports: Iterable[QuotaReport], started: float) -> None:
        """What the server said about its limits, in an answer to a call that started
        at ``started`` (see ``fanout._quota``). Token limits are followed only when
        the run has a ``cost`` (in tokens)."""
        now = self._clock()
        changed = False
        for report in reports:
            if report.resource == "tokens" and self._cost is None:
                continue
            key = f"{report.resource}/{report.refill}"
            quota = self._quotas.get(key)
            if quota is None:
                quota = self._quotas[key] = ServerQuota(report.resource)
                self._timed = True
                # the calls in flight besides this one may have started after it, unseen
                # by the server when it answered: count them, they are not in the ledger
                unit = 1.0 if report.resource == "requests" else self._cost_now
                quota.ledger.add(started + 1e-9, max(self.running - 1, 0) * unit)
            changed |= quota.observe(report, started, now)
        if changed and self._waiting:
            self._poke()

    def _know(self, resource: Resource, per_second: float) -> None:
        """A limit of the server known before any answer (``server_limits``): a bucket
        refilled at ``per_second`` that starts empty, so the first starts are paced at
        the limit instead of sent blindly into a bucket that may be short or drained;
        the server's first report of that limit replaces it (with what is really left)."""
        quota = self._quotas[f"{resource}/continuous"] = ServerQuota(resource)
        quota.observe(QuotaReport(resource, "continuous", 0.0, reset=60.0,
                                  limit=per_second * 60.0, period=60.0),
                      self._begun, self._begun)
        quota.report = None  # what the server said: nothing yet
        self._timed = True

    def correct(self, delta: float) -> None:
        """A call's real cost differed by ``delta`` from its estimate (any thread)."""
        if self._budget is not None:
            self._budget.correct(delta)

    def wrap(
        self, fn: Callable[..., Any], *, is_async: bool, runs_here: bool
    ) -> Callable[..., Any]:
        """``fn`` as the executor should run it: inside a ticket when the run has a
        ``cost`` and its calls run in this process (``fanout.charge`` and
        ``report`` need to know the run), else ``fn`` itself."""
        if self._cost is None or not runs_here:
            return fn
        return with_tickets(fn, self, is_async)

    # ------------------------------------------------------------ observability
    def rate(self) -> float | None:
        """The start rate allowed now (starts/s), None when no rate binds."""
        pace = self._law.pace
        ceiling = self._rate / RATE_SAFETY if self._rate else None
        if pace is None:
            return ceiling
        return pace if ceiling is None else min(pace, ceiling)

    def details(self) -> str:
        parts = [f"{self.limit} at once" + (" (auto)" if self._auto is not None else "")]
        rate = self.rate()
        if rate is not None:
            paced = self._law.pace is not None
            parts.append(f"{'paced' if paced else 'max'} {_per_second(rate)}")
        now = self._clock()
        paused = self._law.paused_until - now
        for quota in self._quotas.values():
            at = quota.ready_at(now, 1.0)
            if at - now > paused:
                paused = at - now
        if paused > 0.05:
            parts.append(f"waiting {paused:.1f}s for the server")
        if self.signals:
            parts.append(f"{self.signals} overload answer{'' if self.signals == 1 else 's'}")
        return " · ".join(parts)

    def state(self) -> dict[str, Any]:
        law = self._law
        rate = self.rate()
        state: dict[str, Any] = {
            "concurrency": self.limit,
            "concurrency_max": self.ceiling,
            "auto_concurrency": self._auto is not None,
            "rate": None if rate is None else round(rate, 3),
            "overload_signals": self.signals,
            **law.state(),
            "last_decision": law.reason or None,
        }
        del state["pace"]
        if self._auto is not None:
            noload = self._auto.noload
            state["latency_noload_ms"] = None if noload is None else round(noload * 1000, 3)
            state["last_decision"] = self._auto.reason or state["last_decision"]
        if self._budget is not None:
            state["budget_per_second"] = round(self._budget.pacer.per_second, 3)
            state["budget_corrected"] = round(self._budget.corrected, 3)
        if self._quotas:
            state["server_limits"] = {
                key: _report(quota.report) for key, quota in self._quotas.items()
                if quota.report is not None
            }
        return state


def current_flow() -> Flow | None:
    """The flow controller of the call running here (inside a run with a ``cost``)."""
    ticket = current_ticket()
    run = ticket.run if ticket is not None else None
    return run if isinstance(run, Flow) else None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _short(item: Any) -> str:
    """The item for an error message: plain data shortened, anything else by its type
    only (its repr could hold secrets, such as a request's headers)."""
    if not isinstance(item, (str, bytes, int, float, tuple, list, dict)) and item is not None:
        return f"<{type(item).__name__}>"
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _per_second(rate: float) -> str:
    if rate >= 100:
        return f"{rate:,.0f}/s"
    if rate >= 1:
        return f"{rate:.1f}/s"
    return f"{rate * 60:.1f}/min"


def _report(report: QuotaReport) -> dict[str, Any]:
    return {
        "remaining": report.remaining,
        "limit": report.limit,
        "reset_s": report.reset,
        "refill": report.refill,
    }


def flow_summary(flow: dict[str, Any] | None) -> str:
    """What the flow control did (a ``Flow.state()``), in one line for a run's
    summary; empty when it had nothing to do."""
    if not flow:
        return ""
    parts = []
    signals = flow.get("overload_signals") or 0
    if signals:
        parts.append(f"{signals} overload answer{'' if signals == 1 else 's'} (429/503)")
        if flow.get("cuts"):
            undone = flow.get("undone") or 0
            parts.append(f"{flow['cuts']} slow-down{'' if flow['cuts'] == 1 else 's'}"
                         + (f", {undone} undone" if undone else ""))
        if flow.get("tolerated_share"):
            parts.append(f"{flow['tolerated_share']:.0%} tolerated as not load-related")
        if flow.get("pauses"):
            parts.append(f"paused {flow['pauses']}x, {flow['paused_s']:.1f}s")
    if flow.get("auto_concurrency") or signals:
        ended = f"ended at {flow['concurrency']} at once"
        if flow.get("rate") is not None:
            ended += f", {flow['rate']:,.1f}/s"
        parts.append(ended)
    if flow.get("server_limits"):
        parts.append("followed the server's rate-limit headers")
    return "; ".join(parts)
