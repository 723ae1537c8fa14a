"""The warm process pool: reuse, idle shutdown, kills, and sharing between runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import core_jobs as jobs
import psutil
import pytest

import fanout
from fanout.executors._process import ProcessExecutor

HERE = Path(__file__).parent


def record_pid_ignore_sigterm_and_hang(path: str) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    jobs.record_pid(path)
    time.sleep(600)
    return 0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(condition())  # type: ignore[operator]


def _pid_files(path: Path, n: int) -> list[int]:
    assert _wait_until(lambda: len(list(path.glob("*.pid"))) >= n, 30)
    return [int(p.read_text()) for p in path.glob("*.pid")]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE}


def test_a_second_map_starts_no_new_process() -> None:
    first = fanout.map(jobs.pid_of, range(8), mode="process", concurrency=2)
    before = _children()
    second = fanout.map(jobs.pid_of, range(8), mode="process", concurrency=2)
    assert _children() == before
    assert {r.value for r in second} <= before
    assert {r.value for r in first} <= before


def test_two_runs_at_once_share_the_pool() -> None:
    out: dict[str, list[object]] = {}

    def run(name: str, fn: object, items: list[int]) -> None:
        out[name] = [r.value for r in fanout.map(fn, items, mode="process",  # type: ignore[call-overload]
                                                 concurrency=2)]

    threads = [threading.Thread(target=run, args=("double", jobs.double, list(range(300)))),
               threading.Thread(target=run, args=("adouble", jobs.adouble, list(range(200))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out["double"] == [2 * i for i in range(300)]
    assert out["adouble"] == [2 * i for i in range(200)]


def test_cancelling_a_call_kills_its_worker_and_the_pool_goes_on(tmp_path: Path) -> None:
    async def main() -> tuple[int, list[int]]:
        executor = ProcessExecutor()
        executor.prepare(jobs.record_pid_and_sleep, 2, None)
        task = asyncio.ensure_future(executor.submit([str(tmp_path)]))
        loop = asyncio.get_running_loop()
        (pid,) = await loop.run_in_executor(None, _pid_files, tmp_path, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = ProcessExecutor()
        after.prepare(jobs.pid_of, 2, None)
        values, _, errors = await after.submit([1, 2])
        assert errors is None
        return pid, values

    pid, values = asyncio.run(main())
    assert _wait_until(lambda: not _alive(pid), 10)
    assert pid not in values


def test_a_killed_worker_ignoring_sigterm_is_gone_after_the_grace_period(tmp_path: Path) -> None:
    results = fanout.map(record_pid_ignore_sigterm_and_hang, [str(tmp_path)], mode="process",
                         timeout=0.3)
    assert isinstance(results[0].error, fanout.CallTimeout)
    (pid,) = _pid_files(tmp_path, 1)
    assert _wait_until(lambda: not _alive(pid), 10)


def _spawn(code: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = f"{HERE}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.Popen([sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
                            env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_idle_workers_exit_by_themselves_and_come_back_when_needed() -> None:
    proc = _spawn("""
        import sys, fanout, core_jobs
        for _ in range(2):
            rs = fanout.map(core_jobs.pid_of, range(4), mode="process", concurrency=2)
            print(*sorted({r.value for r in rs}), flush=True)
            sys.stdin.readline()
    """, env={"FANOUT_PROCESS_IDLE": "0.3"})
    assert proc.stdout is not None and proc.stdin is not None
    try:
        first = [int(p) for p in proc.stdout.readline().split()]
        assert first
        # the parent waits on its stdin; its idle workers go away by themselves
        assert _wait_until(lambda: not any(_alive(pid) for pid in first), 10)
        proc.stdin.write("\n")
        proc.stdin.flush()
        second = [int(p) for p in proc.stdout.readline().split()]
        assert second and not set(second) & set(first)
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(30)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("api", ["map", "amap"])
def test_workers_never_outlive_a_killed_parent(tmp_path: Path, api: str) -> None:
    # map starts workers from its loop thread (a clean interpreter each); amap
    # under asyncio.run runs in the only thread, so workers are forked.
    call = (f"fanout.map(core_jobs.record_pid_and_sleep, [{str(tmp_path)!r}] * 2, "
            "mode='process', concurrency=2)")
    if api == "amap":
        call = f"asyncio.run(fanout.a{call[len('fanout.'):]})"
    proc = _spawn(f"import asyncio, fanout, core_jobs\n{call}\n")
    pids = _pid_files(tmp_path, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert _wait_until(lambda: not any(_alive(pid) for pid in pids), 20)


def test_map_forks_the_workers_of_a_single_threaded_program_before_its_loop_thread() -> None:
    proc = _spawn("""
        import threading, psutil, fanout

        def double(x):
            return 2 * x

        me = psutil.Process()
        print(sum(r.value for r in fanout.map(double, range(10), mode="process",
                                              concurrency=2)))
        forked = me.children()
        # forks of this program, not fresh interpreters (`python -c ...`)
        print(len(forked), all(k.cmdline() == me.cmdline() for k in forked))
        print(sum(r.value for r in fanout.map(double, range(10), mode="process",
                                              concurrency=2)))
        print({k.pid for k in me.children()} == {k.pid for k in forked})
    """)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["90", "2", "True", "90", "True"]


def test_prestart_never_forks_a_program_that_runs_threads() -> None:
    proc = _spawn("""
        import threading, psutil
        from fanout.executors._process import prestart
        release = threading.Event()
        thread = threading.Thread(target=release.wait)
        thread.start()
        prestart(abs, 2)
        print(len(psutil.Process().children()))
        release.set()
        thread.join()
    """)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["0"]


def test_a_program_that_forks_after_a_run_gets_its_own_workers_in_the_child() -> None:
    proc = _spawn("""
        import os, fanout, core_jobs
        parent = {r.value for r in fanout.map(core_jobs.pid_of, range(4), mode="process")}
        pid = os.fork()
        if pid == 0:
            child = {r.value for r in fanout.map(core_jobs.pid_of, range(4), mode="process")}
            os._exit(0 if child and not child & parent else 3)
        _, status = os.waitpid(pid, 0)
        again = {r.value for r in fanout.map(core_jobs.pid_of, range(4), mode="process")}
        print(os.waitstatus_to_exitcode(status), again <= parent)
    """)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["0", "True"]
