"""Watching a command's output file grow, line by line, from a test."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def count_lines(path: Path) -> int:
    """Complete lines in ``path`` so far (0 before it exists)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_lines(proc: subprocess.Popen[bytes], path: Path, n: int) -> None:
    """Until ``path`` has ``n`` lines (or the process ended); bounded in time."""
    deadline = time.monotonic() + 30
    while count_lines(path) < n and proc.poll() is None:
        assert time.monotonic() < deadline, f"no {n} lines in {path} after 30 s"
        time.sleep(0.002)
