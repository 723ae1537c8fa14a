"""`fanout demo`: the same questions three ways, against the in-process mock API."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from fanout.cli._demo import demo_command


def test_demo_runs_end_to_end_and_every_way_answers_everything_right() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "fanout", "demo", "--n", "20", "--latency", "10ms"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert output.count("20/20") == 3
    for way in ("one by one", "batches of 10", "fanout, 50 at a time"):
        assert way in output
    assert "speedup" in output


def test_demo_in_process_with_custom_knobs_leaks_nothing() -> None:
    result = CliRunner().invoke(
        demo_command,
        ["--n", "7", "--latency", "0.005", "--jitter", "0", "-c", "3", "--batch", "4"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("7/7") == 3
    assert "batches of 4" in result.output
    assert "fanout, 3 at a time" in result.output


def test_demo_rejects_a_bad_latency_with_exit_2() -> None:
    result = CliRunner().invoke(demo_command, ["--latency", "soon"])
    assert result.exit_code == 2
    assert "duration 'soon'" in result.output
