"""`fanout demo`: the same questions five ways, against the in-process mock API."""

from __future__ import annotations

import re
import subprocess
import sys

from _pty import frames, run_in_pty
from click.testing import CliRunner

from fanout.cli._demo import demo_command

WAYS = (
    "requests, one by one",
    "10 threads, batches of 10",
    "ThreadPoolExecutor(50).map",
    "fanout.map, 50 threads",
    "fanout.amap + aiohttp, 50",
)


def test_demo_runs_end_to_end_and_every_way_answers_everything_right() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "fanout", "demo", "--n", "20", "--latency", "10ms"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert output.count("20/20") == len(WAYS)
    for way in WAYS:
        assert way in output
    assert "speedup" in output
    said = re.search(r"ran at ([\d.]+)x the speed of ThreadPoolExecutor\(50\)\.map", output)
    assert said and float(said.group(1)) > 0, output
    assert "failures kept as data" in output and "retries" in output and "rate limit" in output
    assert completed.stderr == ""  # no progress when stderr is not a terminal


def test_demo_in_process_with_custom_knobs_leaks_nothing() -> None:
    result = CliRunner().invoke(
        demo_command,
        ["--n", "7", "--latency", "0.005", "--jitter", "0", "-c", "3", "--batch", "4"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("7/7") == len(WAYS)
    assert "batches of 4" in result.output
    assert "ThreadPoolExecutor(3).map" in result.output
    assert "fanout.map, 3 threads" in result.output


def test_demo_on_a_terminal_counts_the_answers_of_every_way() -> None:
    code, raw = run_in_pty(
        [sys.executable, "-m", "fanout", "demo", "--n", "60", "--latency", "10ms"], columns=160
    )
    assert code == 0, raw
    drawn = frames(raw)
    for number, way in enumerate(WAYS, 1):
        bars = [f for f in drawn if f.startswith(f"{number}/5 {way} ")]
        assert any("60/60 (100%)" in f and "/s overall" in f for f in bars), drawn
    one_by_one = {m.group(1) for f in drawn if (m := re.search(r"one by one .* (\d+)/60 ", f))}
    assert one_by_one - {"0", "60"}, drawn  # a live count, not only a spinner


def test_demo_rejects_a_bad_latency_with_exit_2() -> None:
    result = CliRunner().invoke(demo_command, ["--latency", "soon"])
    assert result.exit_code == 2
    assert "duration 'soon'" in result.output


def test_demo_without_requests_says_how_to_install_it_in_one_line() -> None:
    completed = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.modules['requests'] = None  # as if not installed\n"
         "from fanout.cli import main; main(['demo'])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == (
        "Error: fanout demo compares fanout with the requests library, which is not installed: "
        "pip install 'fanout[demo]'\n"
    )


def test_fanout_help_lists_demo_as_the_five_ways_it_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "fanout", "--help"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    listed = next(line for line in completed.stdout.splitlines() if line.strip().startswith("demo"))
    assert "five ways" in listed and len(WAYS) == 5, listed
