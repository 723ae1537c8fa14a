"""``fanout bench`` as a user runs it: real subprocesses, real files, real outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

JOBS = """
import asyncio
import time


def wait(item):
    time.sleep(item["ms"] / 1000)
    return item["id"]


async def await_it(item):
    await asyncio.sleep(item["ms"] / 1000)
    return item["id"]


def boom(item):
    raise ValueError(f"item {item['id']} is bad")
"""


def fanout(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fanout", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS)
    lines = [json.dumps({"id": i, "ms": 10}) for i in range(40)]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def check_outputs(doc: dict[str, Any], png: Path) -> None:
    assert doc["schema"] == "fanout-bench/1"
    assert doc["machine"]["cores"] >= 1 and isinstance(doc["machine"]["gil"], bool)
    for workload in doc["workloads"]:
        assert workload["recommendation"] is not None, workload
        for cell in workload["cells"]:
            assert cell["status"] == "ok", cell
            assert cell["wall_s"]["min"] <= cell["wall_s"]["median"] <= cell["wall_s"]["max"]
            assert cell["throughput"]["median"] > 0
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000


def test_user_function_sample_table_json_and_plot(project: Path) -> None:
    proc = fanout(
        "jobs:wait",
        "--items",
        "items.jsonl",
        "--modes",
        "sequential,thread,async",
        "--concurrency",
        "1,8",
        "--sample",
        "16",
        "--quick",
        "--json",
        "out.json",
        "--plot",
        "out.png",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    assert "jobs:wait" in proc.stdout and "→ " in proc.stdout
    assert "async mode runs it in the thread pool" in proc.stdout
    doc = json.loads((project / "out.json").read_text())
    check_outputs(doc, project / "out.png")
    (workload,) = doc["workloads"]
    assert workload["name"] == "jobs:wait"
    assert {(c["mode"], c["concurrency"]) for c in workload["cells"]} == {
        ("sequential", 1),
        ("thread", 1),
        ("thread", 8),
        ("async", 1),
        ("async", 8),
    }
    assert all(c["items"] == 16 for c in workload["cells"])
    rec = workload["recommendation"]
    # 10 ms waits: concurrency pays, whichever of threads or the pool behind async wins
    assert rec["kind"] == "io-bound" and rec["concurrency"] == 8
    assert f"→ {rec['mode']} at 8: I/O-bound" in proc.stdout


def test_async_user_function_in_every_mode(project: Path) -> None:
    proc = fanout(
        "jobs:await_it",
        "--items",
        "items.jsonl",
        "-c",
        "4",
        "--sample",
        "8",
        "--quick",
        "--json",
        "out.json",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((project / "out.json").read_text())
    cells = doc["workloads"][0]["cells"]
    assert {c["mode"] for c in cells} == {"thread", "async", "process"}
    assert all(c["status"] == "ok" and c["failed_items"] == 0 for c in cells)


def test_failing_function_is_reported_and_exits_one(project: Path) -> None:
    proc = fanout(
        "jobs:boom",
        "--items",
        "items.jsonl",
        "--modes",
        "thread",
        "-c",
        "2",
        "--sample",
        "4",
        "--quick",
        cwd=project,
    )
    assert proc.returncode == 1
    assert "4 of 4 items failed: ValueError: item" in proc.stdout


def test_builtin_workloads_chosen_with_json_and_plot(tmp_path: Path) -> None:
    proc = fanout(
        "--workloads",
        "sleep,files",
        "--modes",
        "sequential,thread,async",
        "-c",
        "1,4",
        "--quick",
        "--json",
        "b.json",
        "--plot",
        "b.png",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "GIL" in proc.stdout and "cores" in proc.stdout
    doc = json.loads((tmp_path / "b.json").read_text())
    check_outputs(doc, tmp_path / "b.png")
    assert [w["name"] for w in doc["workloads"]] == ["sleep", "files"]
    assert doc["settings"]["quick"] is True and doc["settings"]["repeats"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchmodule:f", "--items", "items.jsonl"], "cannot import 'nosuchmodule'"),
        (["jobs:missing", "--items", "items.jsonl"], "has no attribute 'missing'"),
        (["jobs", "--items", "items.jsonl"], "is not MODULE:FUNCTION"),
        (["jobs:wait", "--items", "nofile.jsonl"], "nofile.jsonl: no such items file"),
        (["jobs:wait", "--items", "bad.jsonl"], "bad.jsonl:2: invalid JSON"),
        (["jobs:wait", "--items", "empty.jsonl"], "empty.jsonl: no items"),
        (["jobs:wait"], "--items INPUT.jsonl"),
        (["--items", "items.jsonl"], "--items needs MODULE:FUNCTION"),
        (["--modes", "thread,proces"], "'proces' is not known"),
        (["--workloads", "gpu"], "'gpu' is not known"),
        (["-c", "1,x"], "'x' is not a whole number"),
        (["-c", "0"], "levels must be >= 1"),
        (["--json", "no/such/dir/out.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(project: Path, args: list[str], message: str) -> None:
    (project / "bad.jsonl").write_text('{"id": 1, "ms": 1}\n{"id": 2,\n')
    (project / "empty.jsonl").write_text("\n\n")
    proc = fanout(*args, cwd=project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""
