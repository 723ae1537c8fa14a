"""``fanout bench --progress`` with stderr redirected: which cell runs, of how many, as lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

JOBS = "import time\n\n\ndef wait(item):\n    time.sleep(item['ms'] / 1000)\n"


def test_bench_progress_logs_the_cell_running_and_how_many_there_are(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"ms": 20}) + "\n" for _ in range(16)))
    completed = subprocess.run(
        [sys.executable, "-m", "fanout", "bench", "jobs:wait", "--items", "items.jsonl",
         "--modes", "sequential,thread", "--concurrency", "1,8", "--quick", "--progress"],
        cwd=tmp_path,
        env={**os.environ, "FANOUT_PROGRESS_INTERVAL": "0.2"},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "\x1b" not in completed.stderr and "\r" not in completed.stderr
    lines = completed.stderr.splitlines()
    final = r"fanout bench: finished 3/3 \(100%\) in [\d:]+, [\d.,]+/(s|min|h) overall, 0 failed$"
    assert re.match(final, lines[-1]), lines
    cells = {m.group(1) for line in lines if (m := re.search(r"jobs:wait: (\w+ at \d+)", line))}
    assert cells and cells <= {"sequential at 1", "thread at 1", "thread at 8"}, lines
    assert any(re.match(r"fanout bench: [012]/3 \(\d+%\), ", line) for line in lines), lines
    assert "→" in completed.stdout  # the report, on stdout as before
