"""Issue 8, item 4: ``fanout run`` is durable and resumable like ``fanout http``.

Real processes: records reach the file as they finish, ``kill -9`` at any moment
then ``--resume`` leaves every input index exactly once, ``--resume`` does not call
the function on what is recorded, ``--retry-failed`` redoes failures, and the
interrupt message is the exact command that resumes."""

from __future__ import annotations

import json
import random
import shlex
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _lines import wait_for_lines

JOBS = '''
import os, time

def work(x):
    """Sleeps x["ms"] milliseconds (600 s when negative); logs each call."""
    with open("calls.log", "a") as log:
        log.write(f"{x['n']}\\n")
    ms = x["ms"]
    time.sleep(600 if ms < 0 else ms / 1000)
    if os.path.exists("fail-odd") and x["n"] % 2:
        raise ValueError(f"odd {x['n']}")
    return x["n"] * 10
'''


def write_items(path: Path, n: int, ms: float = 0, hang_from: int | None = None) -> None:
    with path.open("w") as fh:
        for i in range(n):
            slow = hang_from is not None and i >= hang_from
            fh.write(json.dumps({"id": f"k{i}", "n": i, "ms": -1 if slow else ms}) + "\n")


def spawn(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "fanout", "run", "jobs:work", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS)
    return tmp_path


def test_records_reach_the_file_as_they_finish(work: Path) -> None:
    write_items(work / "in.jsonl", 20, ms=1, hang_from=5)
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "-c", "2")
    try:
        wait_for_lines(proc, work / "out.jsonl", 5)
        assert proc.poll() is None  # still running: items 5 and 6 hang
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert [r["index"] for r in records(work / "out.jsonl")] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("extra", [[], ["--unordered", "--mode", "process", "-c", "3"]])
def test_kill_9_at_several_moments_then_resume_gives_every_index_once(
    work: Path, extra: list[str]
) -> None:
    n = 300
    write_items(work / "in.jsonl", n, ms=3)
    out = work / "out.jsonl"
    rng = random.Random(8)
    for i, threshold in enumerate([0, rng.randint(1, 40), rng.randint(80, 150), 220]):
        proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "--resume", "-c", "4", *extra)
        wait_for_lines(proc, out, threshold)
        proc.kill()
        proc.communicate(timeout=30)
        if i == 1:
            with out.open("ab") as fh:  # what a kill in the middle of a write leaves
                fh.write(b'{"id": "k7", "index": 7, "ok": tr')
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "--resume", "-c", "4", *extra)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    recs = records(out)
    seen = Counter(r["index"] for r in recs)
    assert set(seen) == set(range(n)) and set(seen.values()) == {1}
    assert all(r["ok"] and r["value"] == r["index"] * 10 and r["id"] == f"k{r['index']}"
               for r in recs)


def test_resume_does_not_call_the_function_on_recorded_items(work: Path) -> None:
    write_items(work / "in.jsonl", 8)
    out = work / "out.jsonl"
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl")
    assert proc.communicate(timeout=60) and proc.returncode == 0
    kept = out.read_text().splitlines()[:3] + out.read_text().splitlines()[5:6]
    out.write_text("\n".join(kept) + "\n")
    (work / "calls.log").unlink()
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert sorted(int(x) for x in (work / "calls.log").read_text().split()) == [3, 4, 6, 7]
    assert [r["index"] for r in records(out)] == [0, 1, 2, 5, 3, 4, 6, 7]
    assert "4/4 items" in err.decode() and "4 already in the output" in err.decode()


def test_retry_failed_redoes_only_failures_and_keeps_each_index_once(work: Path) -> None:
    write_items(work / "in.jsonl", 6)
    (work / "fail-odd").touch()
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err.decode()
    assert [r["ok"] for r in records(work / "out.jsonl")] == [True, False] * 3

    proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "--resume")  # failures are kept
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "3 failed records kept" in err.decode()

    (work / "fail-odd").unlink()
    (work / "calls.log").unlink()
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "--resume", "--retry-failed",
                 "--summary-json", "summary.json")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert sorted(int(x) for x in (work / "calls.log").read_text().split()) == [1, 3, 5]
    recs = records(work / "out.jsonl")
    assert sorted(r["index"] for r in recs) == list(range(6)) and all(r["ok"] for r in recs)
    summary = json.loads((work / "summary.json").read_text())
    assert summary == {**summary, "items": 6, "done": 3, "skipped": 3, "ok": 3, "failures": 0,
                       "invalid": 0, "errors": {}, "interrupted": None, "exit_code": 0,
                       "stuck": 0}
    # the mode auto chose, and why
    assert summary["mode"] in ("thread", "process")
    assert summary["mode_reason"].startswith(summary["mode"] + ": ")
    assert set(summary) >= {"retries", "throughput", "wall_time", "failed_before", "concurrency"}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_names_the_exact_resume_command_and_it_completes(
    work: Path, signum: int, code: int
) -> None:
    write_items(work / "in.jsonl", 40, ms=2, hang_from=30)
    args = ["in.jsonl", "-o", "out.jsonl", "-c", "2", "--summary-json", "s.json"]
    proc = spawn(work, *args)
    wait_for_lines(proc, work / "out.jsonl", 30)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    stderr = err.decode()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "interrupted: 30/40 items written to out.jsonl" in stderr
    command = stderr.split("resume with: ", 1)[1].strip()
    assert command == shlex.join(["fanout", "run", "jobs:work", *args, "--resume"])
    summary = json.loads((work / "s.json").read_text())
    assert summary["interrupted"] == signal.Signals(signum).name
    assert summary["exit_code"] == code and summary["done"] == 30

    write_items(work / "in.jsonl", 40, ms=1)  # the slow items are fixed; resume
    proc = subprocess.Popen([sys.executable, "-m", "fanout", *shlex.split(command)[1:]],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert sorted(r["index"] for r in records(work / "out.jsonl")) == list(range(40))


def test_an_interrupted_run_to_stdout_does_not_suggest_resume(work: Path) -> None:
    write_items(work / "in.jsonl", 10, hang_from=3)
    proc = spawn(work, "in.jsonl", "-o", "-", "-c", "1")
    assert proc.stdout is not None
    got = [proc.stdout.readline() for _ in range(3)]
    assert all(got)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted: 3/10 items written to standard output" in err.decode()
    assert "resume" not in err.decode()
    assert out == b""


def test_resume_needs_a_file_and_retry_failed_needs_resume(work: Path) -> None:
    write_items(work / "in.jsonl", 2)
    for args, needle in [(["-o", "-", "--resume"], "--resume needs an output file"),
                         (["-o", "o.jsonl", "--retry-failed"], "--retry-failed needs --resume")]:
        proc = spawn(work, "in.jsonl", *args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and needle in err.decode()


def test_resume_refuses_an_output_that_is_not_a_run_journal(work: Path) -> None:
    write_items(work / "in.jsonl", 2)
    (work / "out.jsonl").write_text('{"id": 1, "ok": true}\n')
    proc = spawn(work, "in.jsonl", "-o", "out.jsonl", "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err.decode()
    assert "'index'" in err.decode() and len(err.decode().strip().splitlines()) == 1
    assert (work / "out.jsonl").read_text() == '{"id": 1, "ok": true}\n'
