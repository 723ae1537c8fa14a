"""Functions the Dask tests run on cluster workers (importable there: the workers
get this folder on their path)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import distributed


def square(x: int) -> int:
    return x * x


def fail_on_multiples_of_three(x: int) -> int:
    if x % 3 == 0:
        raise ValueError(f"bad item {x}")
    return x


def sleep_then_echo(item: tuple[int, float]) -> int:
    index, seconds = item
    time.sleep(seconds)
    return index


def wait_for_file(item: tuple[int, str]) -> int:
    """Return at once for items ``(i, "")``; else block until the file
    named by the item exists (at most 30 s), so a test decides when it ends."""
    index, path = item
    if path:
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
    return index


def quick_or_blocked(item: tuple[int, str, str]) -> int:
    """``(i, release, done_dir)``: with a ``release`` path, wait for that file (at most
    30 s); then write ``done_dir/i``."""
    index, release, done_dir = item
    wait_for_file((index, release))
    Path(done_dir, str(index)).write_text("done")
    return index


def scattered_keys_seen(item: tuple[bytes, str]) -> tuple[list[str], list[str]]:
    """Fail on the first attempt, succeed on the second: the keys of scattered data
    held by the worker that ran each attempt (the first written to ``marker``)."""
    data, marker = item
    assert len(data) > 0
    worker = distributed.get_worker()
    keys = sorted(str(k) for k in worker.data if not str(k).startswith("fanout-"))
    if not os.path.exists(marker):
        Path(marker).write_text(json.dumps(keys))
        raise ValueError("first attempt fails")
    return json.loads(Path(marker).read_text()), keys


def fanout_tasks(dask_scheduler: distributed.Scheduler) -> int:
    """Run on the scheduler: how many of fanout's tasks it holds."""
    return sum(str(key).startswith("fanout-") for key in dask_scheduler.tasks)


def worker_pid() -> int:
    return os.getpid()



def lock_for_two(x: object) -> object:
    """A value that cannot be pickled back, for item 2."""
    return threading.Lock() if x == 2 else x
