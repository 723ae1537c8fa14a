"""Process mode: crashes, timeouts and pickling, with real worker processes."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import core_jobs as jobs
import pytest

import fanout

HERE = Path(__file__).parent


def test_a_dying_worker_fails_only_its_own_item() -> None:
    results = fanout.map(jobs.crash_some, range(12), mode="process", concurrency=2)
    failed = {r.index: r.error for r in results if not r.ok}
    assert set(failed) == {3, 5, 8}
    assert all(isinstance(e, fanout.WorkerCrashed) for e in failed.values())
    assert "exit code 7" in str(failed[3])
    assert "SIGSEGV" in str(failed[5])
    assert "SIGKILL" in str(failed[8])
    assert [r.value for r in results if r.ok] == [i for i in range(12) if i not in failed]


def test_a_crash_inside_a_batch_of_tiny_calls_fails_only_the_culprit() -> None:
    items = list(range(20_000))
    results = fanout.map(jobs.crash_some, items, mode="process", concurrency=2)
    assert len(results) == 20_000
    assert {r.index for r in results if not r.ok} == {3, 5, 8}


def test_timeout_kills_the_worker_and_the_batch_goes_on() -> None:
    items = [1, -1, 2, 3, -1, 4]
    results = fanout.map(jobs.sleep_if_marked, items, mode="process", concurrency=2, timeout=0.5)
    assert [r.ok for r in results] == [x >= 0 for x in items]
    assert all(isinstance(r.error, fanout.CallTimeout) for r in results if not r.ok)
    assert "killed" in str(results[1].error)


def test_a_worker_ignoring_sigterm_gets_sigkill() -> None:
    results = fanout.map(jobs.ignore_sigterm_then_hang, [-1, 1, 2], mode="process",
                         concurrency=1, timeout=0.3)
    assert not results[0].ok and isinstance(results[0].error, fanout.CallTimeout)
    assert results[1].ok and results[2].ok
    # the hung worker was replaced, and the replacement is not the hung process
    assert results[1].value == results[2].value


def test_an_unpicklable_first_item_is_refused_and_later_ones_fail_alone() -> None:
    with pytest.raises(fanout.NotPicklableError, match="picklable items"):
        fanout.map(jobs.double, [jobs.Unpicklable()], mode="process")
    results = fanout.map(jobs.pid_of, [1, jobs.Unpicklable(), 3], mode="process")
    assert [r.ok for r in results] == [True, False, True]
    assert "mode='thread'" in str(results[1].error)


def test_unpicklable_return_values_become_clear_errors() -> None:
    (result,) = fanout.map(jobs.return_lock, [1], mode="process")
    assert isinstance(result.error, fanout.RemoteError)
    assert "cannot be sent back" in str(result.error)


def test_async_functions_are_run_to_completion_in_workers() -> None:
    results = fanout.map(jobs.adouble, [1, 2], mode="process")
    assert [r.value for r in results] == [2, 4]


def test_tiny_tasks_are_sent_in_batches() -> None:
    # Batched tiny calls reach a worker as runs of consecutive items: the pid
    # answering them changes only between runs (one item per hand-off would
    # switch between the two workers every few items).
    results = fanout.map(jobs.pid_of, range(50_000), mode="process", concurrency=2)
    pids = [r.value for r in results]
    assert len(pids) == 50_000 and len(set(pids)) <= 2
    switches = sum(1 for a, b in itertools.pairwise(pids) if a != b)
    assert 50_000 / (switches + 1) > 100


def _spawn(code: str, **kw: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (already dead, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_worker_processes_never_outlive_a_killed_parent(tmp_path: Path) -> None:
    proc = _spawn(f"""
        import fanout, core_jobs
        fanout.map(core_jobs.record_pid_and_sleep, [{str(tmp_path)!r}] * 2,
                   mode="process", concurrency=2)
    """)
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_an_abandoned_thread_never_delays_exit() -> None:
    proc = _spawn("""
        import time, fanout
        rs = fanout.map(time.sleep, [600, 0], mode="thread", timeout=0.2)
        print([r.ok for r in rs])
    """)
    out, err = proc.communicate(timeout=60)  # the abandoned call sleeps 600 s
    assert proc.returncode == 0, err
    assert out.strip() == "[False, True]"


def nap_or_hang(x: int) -> int:
    """50 ms (long enough that calls are never batched), or 600 s for a negative x."""
    time.sleep(600 if x < 0 else 0.05)
    return x


def test_graceful_stop_kills_hung_workers_instead_of_waiting_for_them() -> None:
    async def main() -> list[int]:
        stop = asyncio.Event()
        done = []
        async for r in fanout.aimap(nap_or_hang, [1, -1, 2, 3], mode="process",
                                    concurrency=2, ordered=False, stop=stop):
            done.append(r.index)
            if len(done) == 3:  # the others are done: item 1 runs, for 600 s
                stop.set()
        return done

    start = time.monotonic()
    done = asyncio.run(main())
    assert time.monotonic() - start < 60  # its worker was killed, not waited for
    assert sorted(done) == [0, 2, 3]


def test_map_builds_its_results_with_few_collections() -> None:
    # In a program of its own: the collector trick rightly stands down when other
    # threads (left by earlier tests) could run program code.
    proc = _spawn("""
        import gc, core_jobs as jobs, fanout

        def collections_during(run):
            counts = [0]
            def count(phase, info):
                counts[0] += phase == "start"
            gc.callbacks.append(count)
            try:
                run()
            finally:
                gc.callbacks.remove(count)
            return counts[0]

        n = 300_000
        frozen = gc.get_freeze_count()  # not 0 on 3.12: the interpreter's own objects
        kept = collections_during(lambda: fanout.map(jobs.double, range(n), mode="process"))
        streamed = collections_during(
            lambda: list(fanout.imap(jobs.double, range(n), mode="process")))
        print(kept, streamed, gc.get_freeze_count() == frozen)
    """)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    kept, streamed, unfrozen = out.split()
    # imap's consumer decides what it keeps: a collection per 700 Results or so;
    # map paused the collector while it built each batch of them.
    assert int(streamed) >= 300_000 // 8192
    assert int(kept) <= int(streamed) // 4
    assert unfrozen == "True"


def test_map_leaves_a_program_that_freezes_objects_itself_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        results = fanout.map(jobs.double, range(50_000), mode="process")
        assert results[-1].value == 2 * 49_999
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def _freeze_now() -> str:
    gc.freeze()
    return "froze"


def _disable_now() -> str:
    gc.disable()
    return "disabled"


class _CallsWhenLoaded:
    """A value whose unpickling, in the parent during the run, calls ``action``."""

    def __init__(self, action: Callable[[], str]) -> None:
        self.action = action

    def __reduce__(self) -> tuple[object, ...]:
        return (self.action, ())


def freeze_at_60k(x: int) -> object:
    return _CallsWhenLoaded(_freeze_now) if x == 60_000 else x


def disable_gc_at_60k(x: int) -> object:
    return _CallsWhenLoaded(_disable_now) if x == 60_000 else x


def test_map_never_unfreezes_what_the_program_froze_during_the_run() -> None:
    frozen = gc.get_freeze_count()  # not 0 on 3.12: the interpreter's own objects
    try:
        results = fanout.map(freeze_at_60k, range(100_000), mode="process")
        assert results[60_000].value == "froze"
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_map_never_turns_on_a_collector_its_own_thread_saw_turned_off() -> None:
    try:
        results = fanout.map(disable_gc_at_60k, range(100_000), mode="process")
        assert results[60_000].value == "disabled"
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_map_never_turns_on_a_collector_another_thread_turned_off() -> None:
    turned_off, done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        assert _first_value.wait(30)
        gc.disable()
        turned_off.set()
        while not done.is_set():
            seen.append(gc.isenabled())
            time.sleep(0.001)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        results = fanout.map(signal_at_1000, range(100_000), mode="process")
        assert turned_off.is_set()
    finally:
        done.set()
        thread.join(30)
        gc.enable()
        _first_value.clear()
    assert results[1000].value == "signalled"
    assert seen and not any(seen)


_first_value = threading.Event()


def _signal_now() -> str:
    _first_value.set()
    return "signalled"


def signal_at_1000(x: int) -> object:
    return _CallsWhenLoaded(_signal_now) if x == 1000 else x
