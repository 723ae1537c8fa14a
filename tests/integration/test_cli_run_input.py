"""Issue 8, item 5 (and the input half of item 7): what ``fanout run`` reads.

JSON lines (default), ``--lines``, ``--csv``, ``--spread``, standard input pulled
lazily from a pipe (a bad line is that item's failure), ``id`` carried into the
record, a byte-order mark accepted, invalid UTF-8 a one-line error."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

JOBS = '''
import asyncio

def echo(x):
    return x

def add(a, b=0, *rest):
    return a + b + sum(rest)

def kw(name, n="1"):
    return f"{name}:{n}"

async def aecho(x):
    await asyncio.sleep(0)
    return x
'''


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS)
    return tmp_path


def run(work: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "fanout", "run", *args], cwd=work,
                          input=stdin.decode() if stdin is not None else None,
                          capture_output=True, text=True, timeout=60)
    return proc


def out_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_lines_passes_each_non_blank_line_as_a_string(work: Path) -> None:
    (work / "in.txt").write_bytes(b"alpha\r\n\n  beta gamma \n   \nlast")
    proc = run(work, "jobs:echo", "in.txt", "--lines", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    recs = out_records(proc.stdout)
    assert [r["value"] for r in recs] == ["alpha", "  beta gamma ", "last"]
    assert [r["index"] for r in recs] == [0, 1, 2]


def test_csv_rows_are_dicts_keyed_by_the_header_and_carry_their_id(work: Path) -> None:
    (work / "in.csv").write_bytes(
        b'\xef\xbb\xbfid,name,n\r\na1,"Smith, J",2\r\n\r\na2,"two\nlines",3\r\n'
    )
    proc = run(work, "jobs:echo", "in.csv", "--csv", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    recs = out_records(proc.stdout)
    assert [r["value"] for r in recs] == [{"id": "a1", "name": "Smith, J", "n": "2"},
                                          {"id": "a2", "name": "two\nlines", "n": "3"}]
    assert [(r["id"], r["index"]) for r in recs] == [("a1", 0), ("a2", 1)]


def test_csv_with_spread_passes_keyword_arguments(work: Path) -> None:
    (work / "in.csv").write_text("name,n\nx,5\ny,6\n")
    proc = run(work, "jobs:kw", "in.csv", "--csv", "--spread", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert [r["value"] for r in out_records(proc.stdout)] == ["x:5", "y:6"]


@pytest.mark.parametrize(("content", "needle"), [
    ("a,b\n1,2,3\n", "in.csv:2: a row of 3 fields, but the header has 2"),
    ("a,b\n1\n", "in.csv:2: a row of 1 field, but the header has 2"),
    ("a,a\n1,2\n", "in.csv:2: the CSV header is not valid (line 1: duplicate column 'a'"),
])
def test_a_bad_csv_row_is_a_one_line_error_and_nothing_runs(
    work: Path, content: str, needle: str
) -> None:
    (work / "in.csv").write_text(content)
    proc = run(work, "jobs:echo", "in.csv", "--csv", "-o", "out.jsonl")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {needle}")
    assert not (work / "out.jsonl").exists()


def test_spread_passes_arrays_as_args_and_objects_as_kwargs(work: Path) -> None:
    (work / "in.jsonl").write_text('[1, 2]\n{"a": 3, "b": 4}\n[1, 2, 3, 4]\n')
    proc = run(work, "jobs:add", "in.jsonl", "--spread", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert [r["value"] for r in out_records(proc.stdout)] == [3, 7, 10]


def test_spread_refuses_an_item_that_is_neither_array_nor_object(work: Path) -> None:
    (work / "in.jsonl").write_text('[1, 2]\n5\n')
    proc = run(work, "jobs:add", "in.jsonl", "--spread", "-o", "out.jsonl")
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: in.jsonl:2: --spread needs a JSON array")
    for args in (["--lines", "--spread"], ["--lines", "--csv"]):
        proc = run(work, "jobs:add", "in.jsonl", *args, "-o", "out.jsonl")
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_each_record_carries_index_and_the_items_id(work: Path) -> None:
    (work / "in.jsonl").write_text('{"id": "a"}\n{"id": 7}\n{"x": 1}\n"s"\n{"id": null}\n')
    proc = run(work, "jobs:aecho", "in.jsonl", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    recs = out_records(proc.stdout)
    assert [r.get("id") for r in recs] == ["a", 7, None, None, None]
    assert [r["index"] for r in recs] == [0, 1, 2, 3, 4]


def test_invalid_utf8_is_one_line_naming_file_and_line(work: Path) -> None:
    (work / "in.jsonl").write_bytes(b'1\n"ok"\n"caf\xe9"\n')
    proc = run(work, "jobs:echo", "in.jsonl", "-o", "out.jsonl")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: in.jsonl:3: invalid UTF-8 (byte 0xe9 at column 5)")
    assert not (work / "out.jsonl").exists()


def test_a_byte_order_mark_is_accepted(work: Path) -> None:
    (work / "in.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "first"}\n2\n')
    proc = run(work, "jobs:echo", "in.jsonl", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert [r["value"] for r in out_records(proc.stdout)] == [{"id": "first"}, 2]


def test_stdin_from_a_file_is_validated_first(work: Path) -> None:
    (work / "in.jsonl").write_text('1\n{"bad": \n3\n')
    with (work / "in.jsonl").open("rb") as fh:
        proc = subprocess.run([sys.executable, "-m", "fanout", "run", "jobs:echo", "-", "-o",
                               "out.jsonl"], cwd=work, stdin=fh, capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: <stdin>:2: invalid JSON")
    assert not (work / "out.jsonl").exists()


def test_a_bad_line_in_a_pipe_is_that_items_failure(work: Path) -> None:
    proc = run(work, "jobs:echo", "-", "-o", "-", "--retries", "3",
               stdin=b'1\n{"bad": \n\n"caf\xc3\xa9"\n')
    assert proc.returncode == 1, proc.stderr
    recs = out_records(proc.stdout)
    assert [r["index"] for r in recs] == [0, 1, 2]
    assert recs[1]["ok"] is False and recs[1]["attempts"] == 1
    assert recs[1]["error"]["type"] == "InvalidInput"
    assert recs[1]["error"]["message"].startswith("<stdin>:2: invalid JSON")
    assert recs[2]["value"] == "café"
    assert "done: 3/3 items" in proc.stderr


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One line of the child's stdout, or b"" if none came within ``timeout``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return b""
            chunk = os.read(fd, 1)
            if not chunk:
                return buf
            buf += chunk
    return buf


@pytest.mark.parametrize("mode", ["thread", "process", "async", "sequential"])
def test_a_pipe_is_pulled_lazily_results_come_before_the_producer_ends(
    work: Path, mode: str
) -> None:
    """Each line is answered before the next is written, in every mode (the core
    never waits to fill a batch from a slow input)."""
    answered = 5
    proc = subprocess.Popen([sys.executable, "-m", "fanout", "run", "jobs:echo", "-", "-o", "-",
                             "--mode", mode], cwd=work, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for i in range(answered):
            proc.stdin.write(f'{{"id": "p{i}"}}\n'.encode())
            proc.stdin.flush()
            line = _readline(proc, 30)
            assert line and json.loads(line)["id"] == f"p{i}", line
        proc.stdin.write(b'{"id": "last"}\n')
        proc.stdin.close()
        rest = proc.stdout.read().decode()
        assert proc.wait(timeout=30) == 0
        assert [r["id"] for r in out_records(rest)][-1] == "last"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_producer_is_still_open_exits_cleanly(
    work: Path, signum: int, code: int
) -> None:
    # `(printf '1\n2\n3\n'; sleep 30) | fanout run jobs:echo - -o out.jsonl`, then a signal
    producer = subprocess.Popen(["sh", "-c", "printf '1\\n2\\n3\\n'; exec sleep 30"],
                                stdout=subprocess.PIPE)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fanout", "run", "jobs:echo", "-", "-o",
                                 "out.jsonl"], cwd=work, stdin=producer.stdout,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        out = work / "out.jsonl"
        while not (out.exists() and out.read_bytes().count(b"\n") == 3):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        producer.kill()
        producer.communicate(timeout=30)
    assert proc.returncode == code, err.decode()
    lines = err.decode().strip().splitlines()
    # the mode auto chose, then the one status line: no "Fatal Python error" from the reader
    assert len(lines) == 2 and lines[0].startswith("mode thread: "), lines
    assert lines[1].startswith("interrupted: 3 items written to out.jsonl (3 ok, 0 failed in ")
    assert lines[1].endswith("; resume with: fanout run jobs:echo - -o out.jsonl --resume")


def test_a_named_pipe_is_read_as_it_comes(work: Path) -> None:
    fifo = work / "items.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "fanout", "run", "jobs:echo", str(fifo),
                             "-o", "-"], cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        with fifo.open("wb") as writer:  # opens once fanout has opened the other end
            writer.write(b'"a"\n"b"\n')
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert [r["value"] for r in out_records(out.decode())] == ["a", "b"]
