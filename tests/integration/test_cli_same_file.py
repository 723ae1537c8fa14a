"""Issue 8, item 1: an output (or --summary-json) that is the input is refused with
one line and exit 2 before anything is opened for writing; the input is untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fanout.mock import MockServer


def fanout(*args: str, cwd: Path, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fanout", *args], cwd=cwd, stdin=stdin,
                          capture_output=True, text=True, timeout=60)


def assert_refused(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert needle in lines[0] and "the same file" in lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text("def double(x):\n    return x * 2\n")
    (tmp_path / "x.jsonl").write_text("".join(f"{i}\n" for i in range(5)))
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "x.jsonl", tmp_path / "link.jsonl")
    os.link(tmp_path / "x.jsonl", tmp_path / "hard.jsonl")
    return tmp_path


@pytest.mark.parametrize("output", ["x.jsonl", "./x.jsonl", "sub/../x.jsonl", "link.jsonl",
                                    "hard.jsonl"])
def test_run_refuses_an_output_that_is_the_input(work: Path, output: str) -> None:
    before = (work / "x.jsonl").read_bytes()
    proc = fanout("run", "jobs:double", "x.jsonl", "-o", output, cwd=work)
    assert_refused(proc, "is the input x.jsonl")
    assert (work / "x.jsonl").read_bytes() == before


def test_run_refuses_stdout_appended_to_the_input_and_stdin_as_the_output(work: Path) -> None:
    before = (work / "x.jsonl").read_bytes()
    with (work / "x.jsonl").open("ab") as out:
        proc = subprocess.run([sys.executable, "-m", "fanout", "run", "jobs:double", "x.jsonl",
                               "-o", "-"], cwd=work, stdout=out, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert_refused(proc, "-o standard output is the input x.jsonl")
    with (work / "x.jsonl").open("rb") as stdin:
        proc = fanout("run", "jobs:double", "-", "-o", "hard.jsonl", cwd=work, stdin=stdin.fileno())
    assert_refused(proc, "is the input standard input")
    assert (work / "x.jsonl").read_bytes() == before


@pytest.mark.parametrize(("summary", "needle"), [
    ("x.jsonl", "--summary-json x.jsonl is the input"),
    ("link.jsonl", "--summary-json link.jsonl is the input"),
    ("out.jsonl", "--summary-json out.jsonl is the output"),   # not created yet
    ("./sub/../out.jsonl", "is the output"),
])
def test_run_refuses_a_summary_json_that_is_the_input_or_the_output(
    work: Path, summary: str, needle: str
) -> None:
    before = (work / "x.jsonl").read_bytes()
    proc = fanout("run", "jobs:double", "x.jsonl", "-o", "out.jsonl", "--summary-json", summary,
                  cwd=work)
    assert_refused(proc, needle)
    assert (work / "x.jsonl").read_bytes() == before
    assert not (work / "out.jsonl").exists()


def test_run_accepts_distinct_files_and_pipes(work: Path) -> None:
    proc = fanout("run", "jobs:double", "x.jsonl", "-o", "out.jsonl", "--summary-json", "s.json",
                  cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["value"] for x in (work / "out.jsonl").read_text().splitlines()] == [
        0, 2, 4, 6, 8]


@pytest.mark.parametrize("size", ["small", "over 4 MiB"])
def test_http_refuses_an_output_that_is_the_input(
    mock_server: MockServer, tmp_path: Path, size: str
) -> None:
    req = tmp_path / "req.jsonl"
    n = 5 if size == "small" else 60_000
    req.write_text("".join(json.dumps({"id": i, "url": f"{mock_server.url}/todos/{i % 9 + 1}"})
                           + "\n" for i in range(n)))
    os.link(req, tmp_path / "hard.jsonl")
    before = req.read_bytes()
    for output in ("req.jsonl", "./req.jsonl", "hard.jsonl"):
        proc = fanout("http", "req.jsonl", "-o", output, cwd=tmp_path)
        assert_refused(proc, "is the input req.jsonl")
    proc = fanout("http", "req.jsonl", "-o", "out.jsonl", "--summary-json", "hard.jsonl",
                  cwd=tmp_path)
    assert_refused(proc, "--summary-json hard.jsonl is the input")
    assert req.read_bytes() == before
