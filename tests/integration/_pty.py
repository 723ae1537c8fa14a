"""Run a command on a real pseudo-terminal and read what it drew, frame by frame."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def run_in_pty(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    columns: int = 200,
) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a new pty ``columns`` wide (stdin empty);
    return its exit code and everything it wrote. A run longer than ``timeout`` is killed."""
    environment = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM_PROGRAM"):
        environment.pop(name, None)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        argv, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace")


def frames(raw: str) -> list[str]:
    """The lines drawn, as plain text: escape sequences removed, split at ``\\r`` and ``\\n``."""
    text = _CSI.sub("", raw)
    return [line for line in re.split(r"[\r\n]+", text) if line.strip()]


def red_texts(raw: str) -> list[str]:
    """Every run of text drawn with a red foreground (SGR 31, 91 or palette 1, 9)."""
    runs: list[str] = []
    red = False
    position = 0
    for match in _CSI.finditer(raw):
        if red and raw[position : match.start()].strip():
            runs.append(raw[position : match.start()])
        position = match.end()
        if match.group(2) == "m":
            red = _red_after(red, match.group(1))
    if red and raw[position:].strip():
        runs.append(raw[position:])
    return runs


_OTHER_FOREGROUNDS = {str(n) for n in (*range(30, 38), *range(90, 98))} - {"31", "91"}


def _red_after(red: bool, params: str) -> bool:
    """Whether the foreground is red after an SGR sequence with these parameters."""
    codes = iter(params.split(";"))
    for code in codes:
        if code in ("38", "48"):  # extended colour: 38;5;n or 38;2;r;g;b
            kind = next(codes, "")
            values = [next(codes, "") for _ in range(1 if kind == "5" else 3)]
            if code == "38":
                red = kind == "5" and values[0] in ("1", "9")
        elif code in ("31", "91"):
            red = True
        elif code in ("", "0", "39") or code in _OTHER_FOREGROUNDS:
            red = False
    return red
