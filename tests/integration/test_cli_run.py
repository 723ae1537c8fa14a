"""``fanout run``: input errors, output records, exit codes and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fanout.cli import cli

HERE = Path(__file__).parent


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.syspath_prepend(str(HERE))
    return CliRunner()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_one_record_per_input_in_order(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f"{i}\n" for i in range(30)))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(cli, ["run", "core_jobs:fail_on_odd", str(src), "-o", str(out),
                                 "-c", "4"])
    assert result.exit_code == 1, result.output  # some items failed, all recorded
    records = _lines(out)
    assert [r["index"] for r in records] == list(range(30))
    assert records[2] == {"index": 2, "ok": True, "value": 2, "attempts": 1,
                          "elapsed_ms": records[2]["elapsed_ms"]}
    assert records[3]["error"] == {"type": "ValueError", "message": "odd 3"}


@pytest.mark.parametrize("mode", ["sequential", "thread", "async", "process"])
def test_run_succeeds_in_every_mode(runner: CliRunner, tmp_path: Path, mode: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('1\n{"a": 1}\n"x"\n'.replace('{"a": 1}', "2"))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(cli, ["run", "core_jobs:double", str(src), "-o", str(out),
                                 "--mode", mode])
    assert result.exit_code == 0, result.output
    assert [r["value"] for r in _lines(out)] == [2, 4, "xx"]


def test_invalid_json_line_names_file_and_line_and_runs_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('1\n2\n{"oops": \n4\n')
    out = tmp_path / "out.jsonl"
    result = runner.invoke(cli, ["run", "core_jobs:double", str(src), "-o", str(out)])
    assert result.exit_code == 2
    assert f"{src}:3: invalid JSON" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("function", "needle"),
    [("core_jobs:nope", "has no attribute 'nope'"), ("no_such_mod:f", "cannot import module"),
     ("core_jobs", "expected MODULE:FUNCTION"), ("core_jobs:peak", "is not callable")],
)
def test_unimportable_function_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, function: str, needle: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("1\n")
    result = runner.invoke(cli, ["run", function, str(src), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    assert needle in result.output


def test_missing_input_and_missing_output_dir(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["run", "core_jobs:double", str(tmp_path / "none.jsonl"),
                                 "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "no such input file" in result.output
    src = tmp_path / "in.jsonl"
    src.write_text("1\n")
    result = runner.invoke(cli, ["run", "core_jobs:double", str(src),
                                 "-o", str(tmp_path / "nodir" / "o.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "slowjobs.py").write_text(
        "import time\n"
        "def work(x):\n"
        "    time.sleep(600 if x >= 5 else 0.05)\n"
        "    return x\n"
    )
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f"{i}\n" for i in range(50)))
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fanout", "run", "slowjobs:work", str(src), "-o", str(out),
         "--mode", "process", "-c", "2", "--unordered"],
        cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return proc, out


def _wait_records(proc: subprocess.Popen[str], out: Path, n: int) -> None:
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().count("\n") >= n):
        assert time.monotonic() < deadline and proc.poll() is None, "no records in 30 s"
        time.sleep(0.01)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_keeps_finished_results_and_exits_with_the_signal_code(
    tmp_path: Path, signum: int, code: int
) -> None:
    proc, out = _start(tmp_path)
    _wait_records(proc, out, 5)  # the five quick items; two workers hang on items 5 and 6
    proc.send_signal(signum)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert sorted(r["index"] for r in _lines(out)) == [0, 1, 2, 3, 4]
    assert "interrupted" in stderr


def test_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    proc, out = _start(tmp_path)
    _wait_records(proc, out, 5)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert os.path.exists(out)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["proces"], "No such command 'proces'"),
     (["run", "core_jobs:double", "in.jsonl"], "Missing option '-o'"),
     (["run", "f:g", "in.jsonl", "-o", "o.jsonl", "--mode", "proces"], "'proces' is not one of")],
)
def test_usage_errors_are_one_line_with_a_hint(args: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "fanout", *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert needle in lines[0] and "--help" in lines[0] and lines[0].startswith("Error: ")


def test_stdin_to_stdout_in_process(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["run", "core_jobs:double", "-", "-o", "-"], input="1\n\n2\n")
    assert result.exit_code == 0, result.output
    # (click before 8.2 mixes stderr into stdout here)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(r["index"], r["value"]) for r in records] == [(0, 2), (1, 4)]
    assert "done: 2/2 items" in result.output
