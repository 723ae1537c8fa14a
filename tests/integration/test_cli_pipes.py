"""Issue 8, item 7: clean pipes and clean exits.

``fanout run … -o - | head -3`` and ``fanout http … | head -3`` stop quietly with
the status of a Unix filter killed by SIGPIPE (141) and leave nothing running;
bare ``fanout`` prints its help; ``fanout run``'s progress bar has a total and an
ETA for a file input; a byte-order mark is accepted by ``fanout http``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from _pty import frames, run_in_pty

from fanout.mock import MockServer

JOBS = '''
import time

def work(x):
    time.sleep(0.002)
    return x

def slow(x):
    time.sleep(0.02)
    return x
'''

needs_head = pytest.mark.skipif(shutil.which("head") is None, reason="needs head(1)")


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries ``FANOUT_TEST_MARK=mark``."""
    found = []
    needle = f"FANOUT_TEST_MARK={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            found.append(int(entry))
    return found


def into_head(cmd: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], bytes, str, str]:
    """Run ``cmd | head -3``; (the fanout process, head's output, fanout's stderr, mark)."""
    mark = uuid.uuid4().hex
    env = {**os.environ, "FANOUT_TEST_MARK": mark}
    fan = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert fan.stdout is not None
    head = subprocess.Popen(["head", "-3"], stdin=fan.stdout, stdout=subprocess.PIPE)
    fan.stdout.close()  # head holds the only read end: it exits, the pipe breaks
    out, _ = head.communicate(timeout=60)
    _, err = fan.communicate(timeout=60)
    return fan, out, err.decode(), mark


def assert_nothing_left(mark: str) -> None:
    deadline = time.monotonic() + 15
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"processes left running: {left}"


@needs_head
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_run_into_head_stops_quietly_and_leaves_nothing_running(tmp_path: Path, mode: str) -> None:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "in.jsonl").write_text("".join(f"{i}\n" for i in range(5000)))
    cmd = [sys.executable, "-m", "fanout", "run", "jobs:work", "in.jsonl", "-o", "-",
           "--mode", mode, "-c", "4"]
    fan, out, err, mark = into_head(cmd, tmp_path)
    assert [json.loads(line)["index"] for line in out.splitlines()] == [0, 1, 2]
    assert fan.returncode == 141, err
    assert err == ""  # no Error: line, no "rerun with --resume", no traceback
    assert_nothing_left(mark)


@needs_head
def test_http_into_head_stops_quietly_and_leaves_nothing_running(
    mock_server: MockServer, tmp_path: Path
) -> None:
    req = tmp_path / "req.jsonl"
    req.write_text("".join(json.dumps({"id": i, "url": f"{mock_server.url}/todos/{i % 50 + 1}"})
                           + "\n" for i in range(3000)))
    cmd = [sys.executable, "-m", "fanout", "http", "req.jsonl", "-c", "10"]
    fan, out, err, mark = into_head(cmd, tmp_path)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [0, 1, 2]
    assert fan.returncode == 141, err
    assert err == ""
    assert_nothing_left(mark)


def test_bare_fanout_prints_its_help_and_exits_0() -> None:
    proc = subprocess.run([sys.executable, "-m", "fanout"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: fanout") and "run" in proc.stdout
    assert proc.stderr == ""


def test_run_progress_bar_shows_the_total_and_an_eta_for_a_file(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "in.jsonl").write_text("".join(f"{i}\n" for i in range(40)))
    code, raw = run_in_pty([sys.executable, "-m", "fanout", "run", "jobs:slow", "in.jsonl",
                            "-o", "out.jsonl", "-c", "1"], cwd=tmp_path)
    assert code == 0
    text = "\n".join(frames(raw))
    assert "40/40" in text and "done: 40/40 items" in text
    # the frames drawn while running (0.8 s, 4 frames a second) have the total, and
    # an ETA once the rate is known
    running = [f for f in frames(raw) if re.search(r"\b([1-9]|[1-3][0-9])/", f)]
    assert running, text
    assert all(re.search(r"/40\b", f) for f in running), running
    assert any(re.search(r"ETA\s+\d+:\d\d:\d\d", f) for f in running), running


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_http_accepts_a_byte_order_mark(
    mock_server: MockServer, tmp_path: Path, where: str
) -> None:
    body = b"\xef\xbb\xbf" + f"{mock_server.url}/todos/1\n{mock_server.url}/todos/2\n".encode()
    req = tmp_path / "req.jsonl"
    req.write_bytes(body)
    args = ["req.jsonl"] if where == "file" else ["-"]
    proc = subprocess.run([sys.executable, "-m", "fanout", "http", *args, "-o", "out.jsonl"],
                          cwd=tmp_path, input=body if where == "stdin" else None,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    recs = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["json"]["id"] for r in recs] == [1, 2]
