"""Dask mode on a cluster started the way users start one: ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1 (subprocesses, stopped by their PIDs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest
from dask_jobs import fanout_tasks, sleep_then_echo

import fanout
from fanout.executors._dask import close_shared

HERE = Path(__file__).parent


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:g}s: {check}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by ``proc`` (a nanny and its worker), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scheduler_file = tmp_path_factory.mktemp("dask") / "scheduler.json"
    env = {
        **os.environ,
        # the workers import the tests' functions from here
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        # as fanout's README recommends for a cluster it drives: no silent re-runs
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    }
    dask = [sys.executable, "-m", "dask"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
            env=env, start_new_session=True, stderr=subprocess.DEVNULL,
        ))
        wait_until(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0)
        for _ in range(2):
            started.append(subprocess.Popen(
                [*dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                 "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"],
                env=env, start_new_session=True, stderr=subprocess.DEVNULL,
            ))
        scheduler_address = json.loads(scheduler_file.read_text())["address"]
        with distributed.Client(scheduler_address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield scheduler_address
    finally:
        close_shared()
        for proc in reversed(started):
            _stop(proc)


@pytest.fixture
def client(address: str) -> Iterator[distributed.Client]:
    with distributed.Client(address, set_as_default=False) as client:
        yield client


def run_killing_a_worker(client: distributed.Client, retries: int) -> tuple[list[Any], str]:
    """Eight one-second items on the two workers; the first result kills (-9) a worker
    that is running one."""
    pids = client.run(os.getpid)
    results: list[fanout.Result[Any]] = []
    killed = ""
    for result in fanout.imap(sleep_then_echo, [(i, 1.0) for i in range(8)],
                              executor=fanout.DaskExecutor(client.scheduler.address),
                              concurrency=4, ordered=False, retries=retries, backoff=0):
        results.append(result)
        if not killed:
            killed = sorted(w for w, keys in client.processing().items() if keys)[0]
            os.kill(pids[killed], signal.SIGKILL)
    # failed tasks too are released on the scheduler
    wait_until(lambda: client.run_on_scheduler(fanout_tasks) == 0)
    # the worker's nanny starts a new one: wait for it before the next test
    wait_until(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 2)
    return results, killed


def test_a_worker_killed_mid_run_fails_only_its_items_with_its_address(
    client: distributed.Client,
) -> None:
    results, killed = run_killing_a_worker(client, retries=0)
    assert sorted(r.index for r in results) == list(range(8))  # exactly one each
    crashed = [r for r in results if not r.ok]
    assert 1 <= len(crashed) <= 2  # the running item, and the one waiting behind it
    for r in crashed:
        assert isinstance(r.error, fanout.WorkerCrashed)
        assert f"the Dask worker {killed} holding this item died" in str(r.error)
    assert all(r.value == r.index for r in results if r.ok)


def test_with_retries_the_killed_workers_items_run_again_elsewhere(
    client: distributed.Client,
) -> None:
    results, _ = run_killing_a_worker(client, retries=2)
    assert sorted(r.index for r in results) == list(range(8))
    assert all(r.ok and r.value == r.index for r in results)
    assert any(r.attempts == 2 for r in results)  # fanout's retry, counted as an attempt


CTRL_C = """
import json, sys, time
import distributed
import fanout
from dask_jobs import fanout_tasks, quick_or_blocked

if __name__ == "__main__":
    address, release, done = sys.argv[1:]
    client = distributed.Client(address, set_as_default=False)
    items = [(i, "" if i < 4 else release, done) for i in range(8)]
    try:
        fanout.map(quick_or_blocked, items, executor=fanout.DaskExecutor(client), concurrency=8)
    except fanout.Interrupted as exc:
        kept = [r.value for r in exc.results]
        deadline = time.monotonic() + 20
        while client.run_on_scheduler(fanout_tasks) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = client.run_on_scheduler(fanout_tasks)
        print(json.dumps({"kept": kept, "left": left}), flush=True)
    client.close()
"""


def test_ctrl_c_cancels_the_submitted_tasks_and_keeps_finished_results(
    client: distributed.Client, tmp_path: Path,
) -> None:
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    release, done = tmp_path / "release", tmp_path / "done"
    done.mkdir()
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.Popen(
        [sys.executable, str(script), client.scheduler.address, str(release), str(done)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        # the four quick items ran and were fetched; four tasks wait on the file
        wait_until(lambda: len(list(done.iterdir())) == 4
                   and client.run_on_scheduler(fanout_tasks) == 4, timeout=60)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        release.write_text("go")  # let the worker threads still running them end
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["kept"] == [0, 1, 2, 3]  # the finished results, in order
    assert report["left"] == 0  # the waiting tasks were cancelled on the scheduler


def test_the_environment_variable_is_enough(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    results = fanout.map(sleep_then_echo, [(i, 0.0) for i in range(20)], mode="dask")
    assert results.values() == list(range(20))
    with distributed.Client(address, set_as_default=False) as client:
        wait_until(lambda: client.run_on_scheduler(fanout_tasks) == 0)  # released


@pytest.mark.parametrize("how", ["environment", "--scheduler"])
def test_fanout_run_mode_dask_writes_one_line_per_item(
    address: str, tmp_path: Path, how: str
) -> None:
    (tmp_path / "items.jsonl").write_text("".join(f"[{i}, 0.0]\n" for i in range(30)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    where = ["--scheduler", address]
    if how == "environment":
        env["DASK_SCHEDULER_ADDRESS"], where = address, []
    proc = subprocess.run(
        [sys.executable, "-m", "fanout", "run", "dask_jobs:sleep_then_echo", "items.jsonl",
         "-o", "out.jsonl", "--mode", "dask", "--no-progress", *where],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["index"], r["ok"], r["value"]) for r in records] == [
        (i, True, i) for i in range(30)]
