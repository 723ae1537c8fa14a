"""Dask mode against a real cluster: a LocalCluster of two worker processes on
loopback (one for the module), and the embedded default in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dask
import distributed
import nbclient
import nbformat
import pytest
from dask_jobs import (
    fail_on_multiples_of_three,
    fanout_tasks,
    lock_for_two,
    scattered_keys_seen,
    sleep_then_echo,
    square,
    wait_for_file,
)

import fanout
from fanout.executors._dask import close_shared

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    # as the embedded cluster is: a worker's death fails its tasks at once
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
    yield cluster
    close_shared()  # the clients fanout made for its address
    cluster.close()


@pytest.fixture(scope="module")
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:g}s: {check}")
        time.sleep(0.05)


def no_fanout_tasks(client: distributed.Client) -> Callable[[], bool]:
    return lambda: client.run_on_scheduler(fanout_tasks) == 0


def test_map_returns_one_result_per_item_in_order_with_failures_and_retries(
    client: distributed.Client,
) -> None:
    executor = fanout.DaskExecutor(client)
    results = fanout.map(square, range(500), executor=executor)
    assert results.values() == [x * x for x in range(500)]

    results = fanout.map(fail_on_multiples_of_three, range(9), executor=executor,
                         retries=2, backoff=0)
    assert [r.index for r in results] == list(range(9))
    for r in results:
        if r.index % 3 == 0:
            assert isinstance(r.error, ValueError)
            assert str(r.error) == f"bad item {r.index}"
            assert r.attempts == 3  # fanout's retries, not Dask's
        else:
            assert r.value == r.index
            assert r.attempts == 1


def test_unordered_results_come_as_they_finish_exactly_one_per_item(
    client: distributed.Client,
) -> None:
    items = [(0, 0.6), (1, 0.0), (2, 0.0), (3, 0.0)]
    results = list(fanout.imap(sleep_then_echo, items, executor=fanout.DaskExecutor(client),
                               ordered=False, concurrency=2))
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    assert results[-1].index == 0  # the slow one finished last
    assert all(r.value == r.index for r in results)


def test_a_scheduler_address_or_dask_scheduler_address_points_at_the_cluster(
    cluster: distributed.LocalCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = cluster.scheduler_address
    executor = fanout.DaskExecutor(address)
    assert fanout.map(square, [2, 3], executor=executor).values() == [4, 9]
    assert fanout.map(square, [4], executor=fanout.DaskExecutor(cluster)).values() == [16]

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    seen = fanout.map(lambda _: distributed.get_worker().scheduler.address, [0], mode="dask")
    assert seen.values() == [address]


def test_lambdas_and_closures_travel_with_cloudpickle(client: distributed.Client) -> None:
    offset = 10
    results = fanout.map(lambda x: x + offset, range(5), executor=fanout.DaskExecutor(client))
    assert results.values() == [10, 11, 12, 13, 14]


NOTEBOOK_CELLS = [
    "import fanout",
    "def triple(x):\n    return 3 * x",
    "ex = fanout.DaskExecutor({address!r})\n"
    "print(fanout.map(triple, range(5), executor=ex).values(),"
    " fanout.map(lambda x: -x, [1, 2], executor=ex).values())",
]


def test_functions_defined_in_a_notebook_run_on_the_workers(
    cluster: distributed.LocalCluster,
) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(cell.format(address=cluster.scheduler_address))
        for cell in NOTEBOOK_CELLS
    ])
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    printed = [o.get("text") for o in notebook.cells[-1].outputs if o.get("name") == "stdout"]
    assert printed == ["[0, 3, 6, 9, 12] [-1, -2]\n"]


def test_tiny_calls_travel_many_to_a_task(client: distributed.Client) -> None:
    with distributed.get_task_stream(client) as stream:
        results = fanout.map(square, range(20_000), executor=fanout.DaskExecutor(client),
                             concurrency=4)
    assert results.values()[-1] == 19_999**2
    tasks = [t for t in stream.data if str(t["key"]).startswith("fanout-")]
    assert len(tasks) < 2_000  # one task per item would be 20,000


def test_lazy_input_keeps_at_most_concurrency_tasks_on_the_cluster(
    client: distributed.Client,
) -> None:
    pulled = 0

    def items() -> Iterator[tuple[int, float]]:
        nonlocal pulled
        for i in range(60):
            pulled += 1
            yield (i, 0.01)

    on_cluster = []
    seen = 0
    for result in fanout.imap(sleep_then_echo, items(), executor=fanout.DaskExecutor(client),
                              concurrency=3):
        assert result.ok
        seen += 1
        if seen % 5 == 0:
            on_cluster.append(client.run_on_scheduler(fanout_tasks))
    assert seen == pulled == 60
    assert max(on_cluster) <= 3


def test_a_deadline_cancels_the_task_on_the_cluster(
    client: distributed.Client, tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    items = [(0, str(release)), (1, ""), (2, "")]
    try:
        results = fanout.map(wait_for_file, items, executor=fanout.DaskExecutor(client),
                             timeout=1.0, concurrency=2)
        assert isinstance(results[0].error, fanout.CallTimeout)
        assert "runs on until it ends" in str(results[0].error)
        assert [r.value for r in results[1:]] == [1, 2]
        wait_until(no_fanout_tasks(client))  # cancelled on the scheduler
    finally:
        release.write_text("go")  # the worker thread still running it may end now


def test_an_asynchronous_client_runs_amap_on_its_own_loop(
    cluster: distributed.LocalCluster, client: distributed.Client,
) -> None:
    async def main() -> tuple[list[int], list[int]]:
        async with distributed.Client(cluster.scheduler_address, asynchronous=True,
                                      set_as_default=False) as aclient:
            own = await fanout.amap(square, range(50), executor=fanout.DaskExecutor(aclient))
        # a synchronous client (its own loop thread) serves amap as well
        other = await fanout.amap(square, range(50), executor=fanout.DaskExecutor(client))
        return own.values(), other.values()

    own, other = asyncio.run(main())
    assert own == other == [x * x for x in range(50)]


def test_an_asynchronous_client_blocked_in_sync_map_is_a_clear_error(
    cluster: distributed.LocalCluster,
) -> None:
    async def main() -> str:
        async with distributed.Client(cluster.scheduler_address, asynchronous=True,
                                      set_as_default=False) as aclient:
            try:  # the sync API inside a coroutine: the client's loop waits for map
                fanout.map(square, [1], executor=fanout.DaskExecutor(aclient))
            except fanout.ConfigError as exc:
                return str(exc)
            return "no error"

    message = asyncio.run(main())
    assert "did not answer within 5s" in message
    assert "with fanout.map/imap use a synchronous Client" in message


def test_a_large_item_is_scattered_once_and_reused_by_its_retry(
    client: distributed.Client, tmp_path: Path,
) -> None:
    # 12 MB inline in a task would warn "Sending large graph" (an error here)
    item = (b"x" * (12 << 20), str(tmp_path / "marker"))
    results = fanout.map(scattered_keys_seen, [item], executor=fanout.DaskExecutor(client),
                         retries=1, backoff=0)
    first, second = results.values()[0]
    assert results[0].attempts == 2
    assert len(first) == 1  # the item, scattered
    assert first == second  # the retry used the same copy on the cluster
    # released once the item succeeded
    wait_until(lambda: not any(set(first) & set(keys) for keys in client.has_what().values()))


def test_a_function_closing_over_large_data_is_sent_once(
    client: distributed.Client,
) -> None:
    table = b"x" * (12 << 20)  # inline in every task it would warn "Sending large graph"
    results = fanout.map(lambda x: len(table) + x, range(300),
                         executor=fanout.DaskExecutor(client), concurrency=4)
    assert results.values() == [len(table) + x for x in range(300)]
    wait_until(lambda: not any(client.has_what().values()))  # released after the run


def test_an_item_or_a_value_that_cannot_travel_fails_alone(client: distributed.Client) -> None:
    executor = fanout.DaskExecutor(client)
    results = fanout.map(square, [1, 2, threading.Lock(), 4], executor=executor)
    assert [r.value for r in results] == [1, 4, None, 16]
    assert isinstance(results[2].error, fanout.NotPicklableError)
    assert "cannot pickle '_thread.lock' object" in str(results[2].error)

    results = fanout.map(lock_for_two, [1, 2, 3], executor=executor)
    assert [r.value for r in results] == [1, None, 3]
    assert isinstance(results[1].error, fanout.RemoteError)
    assert "cannot be sent back from the Dask worker" in str(results[1].error)


def test_without_the_extra_mode_dask_is_a_one_line_error_naming_the_install() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None  # as if fanout[dask] was not installed
        from fanout import *  # every published name still imports
        import fanout
        for attempt in (lambda: fanout.map(abs, [1], mode="dask"),
                        lambda: fanout.DaskExecutor("tcp://127.0.0.1:8786")):
            try:
                attempt()
            except fanout.ConfigError as exc:
                print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("mode 'dask' is not available: it needs Dask's distributed")
        assert line.endswith("pip install 'fanout[dask]'")


EMBEDDED = """
import json, os, signal
import distributed
import fanout
from fanout.executors._dask import close_shared

def where(x):
    if x == 13:
        os.kill(os.getpid(), signal.SIGSEGV)  # a worker that segfaults
    return distributed.get_worker().address

if __name__ == "__main__":
    results = fanout.map(where, range(40), mode="dask")
    print(json.dumps({
        "indexes": [r.index for r in results],
        "failed": {r.index: f"{type(r.error).__name__}: {r.error}" for r in results if not r.ok},
        "workers": sorted({r.value for r in results if r.ok}),
    }))
"""


def test_the_embedded_cluster_starts_on_loopback_and_a_segfault_fails_one_item(
    tmp_path: Path,
) -> None:
    script = tmp_path / "embedded.py"
    script.write_text(EMBEDDED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    proc = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True,
                          text=True, timeout=90, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["indexes"] == list(range(40))
    # the culprit, and at most the one item waiting behind it on that worker
    assert "13" in out["failed"] and len(out["failed"]) <= 2
    for message in out["failed"].values():
        assert message.startswith("WorkerCrashed: the Dask worker tcp://127.0.0.1:")
        assert "th worker to die" not in message  # allowed-failures 0: no silent re-runs
    assert out["workers"] and all(w.startswith("tcp://127.0.0.1:") for w in out["workers"])
    assert "Traceback" not in proc.stderr
