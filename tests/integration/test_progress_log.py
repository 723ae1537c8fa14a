"""Progress when stderr is a file or a pipe (CI, cron, journald): plain lines as the run goes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fanout._progress import Progress

SCRIPT = """
import sys
import time

import fanout


def work(x):
    time.sleep(0.01)
    if x % 50 == 7:
        raise ValueError(x)
    return x


if __name__ == "__main__":
    progress = {"on": True, "default": None}[sys.argv[1]]
    fanout.map(work, range(240), mode="thread", concurrency=2, progress=progress)
"""
LINE = re.compile(
    r"^fanout work: (\d+)/240 \(\d+%\), [\d,.]+/(s|min|h) recent, "
    r"ETA (\d+:\d\d:\d\d|-:--:--), (\d+) failed, \d+ retries, elapsed \d+:\d\d:\d\d$"
)
FAILURES = "fanout.map(work): 5 of 240 items failed; the first, item 7: ValueError: 7"
FINAL = re.compile(
    r"^fanout work: finished 240/240 \(100%\) in \d+:\d\d:\d\d, [\d,.]+/s overall, "
    r"5 failed, 0 retries$"
)


def run(tmp_path: Path, *args: str, interval: str = "0.2") -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env={**os.environ, "FANOUT_PROGRESS_INTERVAL": interval},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_redirected_stderr_gets_a_plain_line_every_interval_and_one_at_the_end(
    tmp_path: Path,
) -> None:
    stderr = run(tmp_path, "on").stderr
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", stderr), repr(stderr)  # no \r, no ESC
    lines = stderr.splitlines()
    # the run had failures: the fanout logger's one warning comes last
    assert lines.pop() == FAILURES
    assert FINAL.match(lines[-1]), lines
    periodic = [LINE.match(line) for line in lines[:-1]]
    assert all(periodic), lines
    done = [int(m.group(1)) for m in periodic if m]
    assert len(done) >= 3, lines  # a ~1.2 s run, a line every 0.2 s
    assert done == sorted(done) and done[-1] < 240
    assert any(m.group(3) != "-:--:--" for m in periodic if m)  # an ETA once items finish


def test_progress_defaults_to_off_when_stderr_is_redirected(tmp_path: Path) -> None:
    assert run(tmp_path, "default").stderr.splitlines() == [FAILURES]


def test_fanout_run_with_progress_logs_lines_to_a_redirected_stderr(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text("import time\n\ndef nap(x):\n    time.sleep(0.01)\n")
    (tmp_path / "items.jsonl").write_text("".join(f"{json.dumps(i)}\n" for i in range(100)))
    completed = subprocess.run(
        [sys.executable, "-m", "fanout", "run", "jobs:nap", "items.jsonl", "-o", "out.jsonl",
         "-c", "1", "--progress"],
        cwd=tmp_path,
        env={**os.environ, "FANOUT_PROGRESS_INTERVAL": "0.2", "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.startswith("fanout nap:")]
    assert len(lines) >= 3, completed.stderr
    assert "finished 100/100 (100%) in " in lines[-1] and "/s overall" in lines[-1]


class Counts:
    """A run's counters as the orchestrator exposes them, with the optional extras."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.retried = 2
        self.stuck = 1

    @property
    def total(self) -> int | None:
        return 50

    def details(self) -> str:
        return "concurrency 12/64, 3 throttles"


def test_interval_keyword_and_optional_counters_are_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    counts = Counts()
    progress = Progress(counts, "fetch", interval=0.05)
    progress.start()
    written = ""
    deadline = time.monotonic() + 10
    try:
        while "\n" not in written and time.monotonic() < deadline:  # one periodic line
            counts.done = min(counts.done + 1, 49)
            time.sleep(0.01)
            written += capsys.readouterr().err
    finally:
        counts.done = 50
        progress.stop()
    lines = (written + capsys.readouterr().err).splitlines()
    assert len(lines) >= 2, lines
    assert re.match(r"fanout fetch: \d+/50 \(\d+%\), [\d,.]+/s recent, ", lines[0]), lines
    assert lines[-1].startswith("fanout fetch: finished 50/50 (100%) in ")
    for line in lines:
        assert "2 retries, 1 stuck past timeout, concurrency 12/64, 3 throttles" in line
    assert "fanout-progress" not in {thread.name for thread in threading.enumerate()}


class BenchLikeCounts:
    """No retries: a count of something else (bench cells)."""

    done = 3
    failed = 0
    total = 4


def test_counts_without_retries_show_none(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(BenchLikeCounts(), "bench", interval=60)
    progress.start()
    progress.stop()
    line = capsys.readouterr().err.strip()
    assert line.startswith("fanout bench: stopped at 3/4 (75%)") and "retr" not in line


def test_a_bad_interval_in_the_environment_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FANOUT_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match=r"^FANOUT_PROGRESS_INTERVAL must be a number of "
                       r"seconds > 0 \(got FANOUT_PROGRESS_INTERVAL='soon'\)$"):
        Progress(BenchLikeCounts(), "x")
