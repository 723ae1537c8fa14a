"""mode="auto"'s decision, branch by branch, on given readings (no clock, no threads)."""

from __future__ import annotations

import pytest

from fanout._auto import EARLY_S, Choice, Facts, Reading, choose, early_choice_possible

CPU = Reading(cpu=0.0145, ready=0.0, wall=0.015, finished=True)
WAIT = Reading(cpu=0.0002, ready=0.0, wall=0.020, finished=True)
TINY = Reading(cpu=0.000004, ready=0.0, wall=0.000005, finished=True)
GOOD = Facts(cores=2, gil=True, process_refused=None, left=500, process_slots=2, startup_s=0.1)


def decide(reading: Reading, given: Facts) -> Choice:
    choice = choose(reading, given)
    assert choice is not None
    return choice


def facts(**change: object) -> Facts:
    return Facts(**{**GOOD.__dict__, **change})  # type: ignore[arg-type]


def test_cpu_bound_calls_with_work_left_go_to_processes_saying_why() -> None:
    choice = decide(CPU, GOOD)
    assert choice.mode == "process"
    assert choice.reason == "process: calls are 97% CPU, 15 ms each"


def test_waiting_calls_stay_on_threads() -> None:
    choice = decide(WAIT, GOOD)
    assert choice.mode == "thread" and "they mostly wait" in choice.reason


def test_tiny_calls_stay_where_the_overhead_is_lowest() -> None:
    choice = decide(TINY, GOOD)
    assert choice.mode == "thread" and "tiny calls (5 µs each)" in choice.reason


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"gil": False}, "without the GIL threads run them in parallel"),
        ({"cores": 1}, "with 1 core"),
        ({"process_slots": 1}, "with concurrency=1"),
        ({"process_refused": "NotPicklableError: no"}, "cannot go to worker processes"),
        ({"left": 3}, "3 calls left do not pay for starting worker processes"),
    ],
)
def test_cpu_bound_calls_stay_on_threads_when_processes_cannot_help(
    change: dict[str, object], why: str
) -> None:
    choice = decide(CPU, facts(**change))
    assert choice.mode == "thread"
    assert choice.reason.startswith("thread: calls are 97% CPU, 15 ms each")
    assert why in choice.reason


def test_tiny_cpu_calls_go_to_warm_workers_when_the_items_are_small_and_many() -> None:
    warm = facts(startup_s=0.0, item_bytes=30, left=50_000)
    choice = decide(TINY, warm)
    assert choice.mode == "process"
    assert choice.reason == ("process: tiny calls (5 µs each, 80% CPU), sent in batches to "
                             "the warm worker processes")
    # any condition missing keeps them on threads
    for change in ({"startup_s": 0.1}, {"item_bytes": 5_000}, {"item_bytes": None},
                   {"left": 500}, {"left": None}, {"gil": False}, {"cores": 1},
                   {"process_slots": 1}, {"process_refused": "a lambda over a lock"}):
        assert decide(TINY, facts(**{**warm.__dict__, **change})).mode == "thread", change
    waiting = Reading(cpu=0.000001, ready=0.0, wall=0.000005, finished=True)
    assert decide(waiting, warm).mode == "thread"


def test_warm_workers_make_even_a_few_calls_worth_sending() -> None:
    choice = choose(CPU, facts(left=3, startup_s=0.0))
    assert choice is not None and choice.mode == "process"


def test_a_running_calls_reading_never_says_too_little_work_left() -> None:
    # so far it is only a lower bound of the call's cost: wait for the call to end
    running = Reading(cpu=0.004, ready=0.0, wall=0.004, finished=False)
    assert choose(running, facts(left=20)) is None
    choice = choose(running, facts(left=500))
    assert choice is not None and choice.mode == "process"


def test_time_waiting_for_a_core_counts_as_wanting_the_cpu() -> None:
    # a CPU-bound call on a busy machine: on the CPU 40% of the time, ready the rest
    busy = Reading(cpu=0.006, ready=0.009, wall=0.015, finished=True)
    assert busy.share == pytest.approx(1.0)
    assert decide(busy, GOOD).mode == "process"


def test_a_running_call_is_read_early_only_when_the_reading_is_clear() -> None:
    assert not early_choice_possible(Reading(0.001, 0.0, EARLY_S / 2, False))  # too soon
    assert early_choice_possible(Reading(0.0039, 0.0, 0.004, False))  # clearly CPU
    assert early_choice_possible(Reading(0.0001, 0.0, 0.004, False))  # clearly waiting
    assert not early_choice_possible(Reading(0.002, 0.0, 0.004, False))  # mixed: wait for it
    assert early_choice_possible(Reading(0.002, 0.0, 0.004, True))
    early = choose(Reading(0.0039, 0.0, 0.004, False), GOOD)
    assert early is not None and "and more" in early.reason
