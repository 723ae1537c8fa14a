"""Issue 8, item 6: ``fanout run`` writes valid JSON and changes nothing silently.

Every output line parses with a strict JSON parser; a return value that is not
JSON is that item's failure naming the type and the fix (or ``str(value)`` with
``--default str``); what the function prints never lands among the records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

JOBS = '''
import os, sys

def odd(x):
    kind = x["kind"]
    if kind == "set":
        return {1}
    if kind == "bytes":
        return b"ab"
    if kind == "gen":
        return (i for i in range(2))
    if kind == "nan":
        return float("nan")
    if kind == "nested":
        return {"a": [1, float("inf")]}
    if kind == "tuple-key":
        return {(1, 2): "v"}
    return x

def noisy(x):
    print(f"print {x}")
    sys.stdout.write(f"write {x}\\n")
    os.write(1, f"fd {x}\\n".encode())
    return x
'''

KINDS = ["set", "bytes", "gen", "nan", "nested", "tuple-key", "fine"]


def strict(line: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"kind": k}) + "\n" for k in KINDS))
    return tmp_path


def run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fanout", "run", *args], cwd=work,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", ["thread", "sequential"])
def test_a_value_that_is_not_json_is_that_items_failure(work: Path, mode: str) -> None:
    proc = run(work, "jobs:odd", "in.jsonl", "-o", "-", "--mode", mode)
    assert proc.returncode == 1, proc.stderr
    recs = [strict(line) for line in proc.stdout.splitlines()]
    assert [r["ok"] for r in recs] == [False] * 6 + [True]
    for rec, kind in zip(recs[:6], KINDS, strict=False):
        assert rec["error"]["type"] == "NotJSONSerializable", rec
        message = rec["error"]["message"]
        assert "--default str" in message and "return JSON data" in message
        assert "\n" not in message and "value" not in rec
        expected = {"set": "set", "bytes": "bytes", "gen": "generator", "nan": "NaN",
                    "nested": "NaN and Infinity", "tuple-key": "tuple"}[kind]
        assert expected in message, message
    assert recs[6]["value"] == {"kind": "fine"}


def test_default_str_writes_str_of_the_value(work: Path) -> None:
    proc = run(work, "jobs:odd", "in.jsonl", "-o", "out.jsonl", "--default", "str")
    assert proc.returncode == 0, proc.stderr
    recs = [strict(line) for line in (work / "out.jsonl").read_text().splitlines()]
    values = [r["value"] for r in recs]
    assert values[:2] == ["{1}", "b'ab'"]
    assert values[2].startswith("<generator object")
    assert values[3:6] == ["nan", {"a": [1, "inf"]}, {"(1, 2)": "v"}]


def test_process_mode_names_a_value_that_cannot_come_back(work: Path) -> None:
    proc = run(work, "jobs:odd", "in.jsonl", "-o", "-", "--mode", "process")
    assert proc.returncode == 1, proc.stderr
    recs = [strict(line) for line in proc.stdout.splitlines()]
    assert [r["ok"] for r in recs] == [False] * 6 + [True]
    assert "generator" in recs[2]["error"]["message"]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_what_the_function_prints_goes_to_stderr_when_records_go_to_stdout(
    work: Path, mode: str
) -> None:
    (work / "in.jsonl").write_text("".join(f"{i}\n" for i in range(20)))
    proc = run(work, "jobs:noisy", "in.jsonl", "-o", "-", "--mode", mode, "-c", "4")
    assert proc.returncode == 0, proc.stderr
    recs = [strict(line) for line in proc.stdout.splitlines()]
    assert [r["value"] for r in recs] == list(range(20))
    for i in range(20):  # threads print at once: lines may interleave, words do not
        for what in ("print", "write", "fd"):
            assert f"{what} {i}" in proc.stderr


def test_what_the_function_prints_stays_on_stdout_when_records_go_to_a_file(work: Path) -> None:
    (work / "in.jsonl").write_text("1\n")
    proc = run(work, "jobs:noisy", "in.jsonl", "-o", "out.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["fd 1", "print 1", "write 1"]
