"""The control law of the start rate (fanout._control.PaceLaw) on explicit times: epochs,
bounded cuts with a floor, additive growth per round trip, undoing a cut that did not help,
pausing only when the limit is exhausted, and the ceiling."""

from __future__ import annotations

import itertools

import pytest

from fanout._control import (
    EXHAUSTED_BETA,
    EXHAUSTED_LEAST,
    FLOOR,
    MAX_CUT,
    MIN_EPOCH,
    PaceLaw,
    overload_of,
)


class Client:
    """Drives a PaceLaw the way the gate does: evenly spaced starts at ``rate`` per
    second, each answered ``rtt`` later, with a ``refuse(t)`` deciding which are 429s."""

    def __init__(self, law: PaceLaw, rate: float, rtt: float = 0.05) -> None:
        self.law = law
        self.rate = rate
        self.rtt = rtt
        self.now = 0.0
        self.pending: list[tuple[float, float, bool]] = []  # (answer time, started, refused)
        self.refused = 0

    def run(self, until: float, refuse, retry_after: float | None = 1.0) -> None:  # type: ignore[no-untyped-def]
        law = self.law
        while self.now < until:
            pace = law.pace if law.pace is not None else self.rate
            step = 1.0 / min(pace, self.rate)
            start = max(self.now + step, law.paused_until)
            while self.pending and self.pending[0][0] <= start:
                at, started, no = self.pending.pop(0)
                law.on_answer(at, started, 1, int(no), retry_after if no else None)
            self.now = start
            law.on_start(start)
            refused = bool(refuse(start))
            self.refused += refused
            self.pending.append((start + (0.001 if refused else self.rtt), start, refused))
            self.pending.sort()


def activated(ceiling: float | None = None) -> PaceLaw:
    law = PaceLaw(ceiling)
    law.activate(0.0, 0, 0)
    return law


def window(limit: int, until: float = float("inf")):  # type: ignore[no-untyped-def]
    """A server taking at most ``limit`` calls in any 1 s (until ``until``): refuse(t)."""
    accepted: list[float] = []

    def refuse(t: float) -> bool:
        while accepted and accepted[0] <= t - 1.0:
            accepted.pop(0)
        if t < until and len(accepted) >= limit:
            return True
        accepted.append(t)
        return False

    return refuse


def test_overload_signals_are_throttle_hints_and_statuses_429_503_529() -> None:
    class Hinted(Exception):
        throttle = True

    class Status(Exception):
        def __init__(self, status: int) -> None:
            self.status = status

    class Response:
        status_code = 503

    class WithResponse(Exception):
        response = Response()

    assert overload_of(Hinted())
    assert overload_of(Status(429)) and overload_of(Status(529))
    assert overload_of(WithResponse())
    assert not overload_of(Status(500)) and not overload_of(ValueError("429"))


def test_a_signal_from_a_call_started_before_the_last_reaction_is_not_a_new_one() -> None:
    law = activated()
    for i in range(60):  # 100 calls/s for 0.6 s, two refused, judged at the epoch's end
        law.on_start(i / 100)
    law.on_answer(0.3, 0.2, 1, 1, None)
    law.on_answer(0.35, 0.25, 1, 1, None)
    law.on_answer(0.6, 0.55, 1, 0, None)
    assert law.cuts == 1
    reacted = law.pace
    # answers to calls started before that cut: refused, but the same episode
    for i in range(50):
        law.on_answer(0.6 + i * 0.05, 0.3 + i * 0.005, 1, int(i % 4 == 0), None)
    assert law.cuts == 1 and law.pace is not None and law.pace >= reacted  # type: ignore[operator]


def test_a_cut_is_bounded_and_never_below_the_floor() -> None:
    law = activated()
    for i in range(60):
        law.on_start(i / 100)
    # a third of the answers refused: a goodput of 20/s while starting 100/s
    for i in range(15):
        law.on_answer(0.1 + i * 0.02, 0.05 + i * 0.02, 1, int(i % 3 == 0), None)
    law.on_answer(0.6, 0.55, 1, 0, None)
    assert law.cuts == 1
    assert law.pace is not None
    assert law.pace == pytest.approx(MAX_CUT * 100, rel=0.05)  # not 90% of 20/s: half
    slow = activated()
    slow.on_start(0.0)
    slow.on_answer(5.0, 0.0, 1, 1, None)  # 0.2 calls/s, all refused: half of it is < FLOOR
    assert slow.cuts == 1 and slow.pace == FLOOR


def test_the_pace_grows_back_additively_each_epoch_without_overload() -> None:
    law = activated()
    client = Client(law, rate=1000.0)
    client.run(3.0, refuse=window(100, until=3.0))  # a limit of 100/s, lifted at 3 s
    assert law.cuts >= 1
    cut = law.pace
    assert cut is not None
    paces = []
    for _ in range(6):  # no more overload: one step per epoch
        client.run(client.now + MIN_EPOCH, refuse=lambda t: False)
        paces.append(law.pace)
    grown = [p for p in paces if p is not None]
    assert len(grown) == 6 and grown[0] > cut  # one step up per epoch
    assert all(b > a for a, b in itertools.pairwise(grown))


def test_a_limit_is_found_and_followed_with_few_refusals() -> None:
    """A server that takes 100 calls/s (anything above is refused at once): the law
    settles just under it and refuses stay few."""
    law = activated()
    client = Client(law, rate=400.0)
    refuse = window(100)
    client.run(3.0, refuse)
    refused_early = client.refused
    starts_before = law.cuts
    client.run(23.0, refuse)
    assert starts_before >= 1
    assert law.pace is not None and 80 <= law.pace <= 125
    assert client.refused - refused_early < 0.05 * 100 * 20


def test_load_independent_refusals_are_tolerated_after_one_undone_cut() -> None:
    law = activated(ceiling=400.0)
    client = Client(law, rate=400.0)
    # every 6th call refused, whatever the pace (17%)
    counter = iter(range(10**9))
    client.run(10.0, refuse=lambda t: next(counter) % 6 == 0)
    assert law.undone >= 1
    assert law.tolerated == pytest.approx(1 / 6, abs=0.05)
    assert law.pace is None  # back to the ceiling: the refusals did not depend on the pace
    cuts = law.cuts
    client.run(20.0, refuse=lambda t: next(counter) % 6 == 0)
    assert law.cuts == cuts  # no more cuts


def test_a_single_retry_after_does_not_pause_the_run() -> None:
    law = activated()
    for i in range(50):
        law.on_start(i / 100)
    law.on_answer(0.6, 0.3, 1, 1, 30.0)  # one 429 asking for 30 s
    for i in range(20):
        law.on_answer(0.6 + i / 100, 0.31 + i / 100, 1, 0, None)
    assert law.paused_until < 0.6 and law.pauses == 0


def test_an_exhausted_limit_pauses_every_start_once_and_stale_answers_do_not_rearm_it() -> None:
    law = activated()
    for i in range(100):
        law.on_start(i / 1000)
    for i in range(EXHAUSTED_LEAST):  # the latest answers: all refused, Retry-After 2 s
        law.on_answer(0.1 + i / 1000, 0.09 + i / 1000, 1, 1, 2.0)
    assert law.pauses == 1
    until = law.paused_until
    assert until == pytest.approx(0.1 + (EXHAUSTED_LEAST - 1) / 1000 + 2.0)
    # more refusals of calls started before the pause ended: stale, no new pause
    for i in range(64):
        law.on_answer(0.2 + i / 100, 0.099 + i / 100000, 1, 1, 2.0)
    assert law.pauses == 1 and law.paused_until == until
    # the pace after the pause: what the server took in the last Retry-After before the
    # first refusal (the 90 calls started before 0.09 s, in 2 s)
    assert law.pace is not None and law.pace == pytest.approx(EXHAUSTED_BETA * 90 / 2.0, rel=0.05)
    # refusals of calls started after the pause ended count again
    for i in range(EXHAUSTED_LEAST):
        law.on_answer(until + 0.5 + i / 1000, until + 0.4 + i / 1000, 1, 1, 2.0)
    assert law.pauses == 2


def test_the_pace_never_exceeds_the_ceiling() -> None:
    law = activated(ceiling=50.0)
    client = Client(law, rate=50.0)
    client.run(3.0, refuse=window(30, until=3.0))
    assert law.cuts >= 1 and law.pace is not None and law.pace < 50.0
    client.run(40.0, refuse=lambda t: False)
    assert law.pace is None  # back to the ceiling, which the gate's pacer keeps


def test_decisions_are_logged_at_debug_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="fanout.flow")
    law = activated()
    for i in range(60):
        law.on_start(i / 100)
    law.on_answer(0.3, 0.2, 1, 1, None)
    law.on_answer(0.35, 0.25, 1, 1, None)
    law.on_answer(0.6, 0.55, 1, 0, None)
    (record,) = [r for r in caplog.records if r.name == "fanout.flow"]
    assert "cut the pace" in record.getMessage() and "overload signal" in record.getMessage()
    assert law.reason == record.getMessage().split(": ", 1)[1]
