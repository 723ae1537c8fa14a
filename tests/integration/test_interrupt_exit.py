"""A library script stopped by Ctrl-C ends with the Ctrl-C status, as Python programs do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

# One call at a time, each long enough not to be batched: when item 5 says it
# hangs, items 0-4 have finished.
SCRIPT = """
import os, sys, time, fanout
def work(x):
    if x == 5:
        print("hanging", os.getpid(), flush=True)
        time.sleep(600)
    time.sleep(0.02)
    return x
{call}
"""
UNCAUGHT = "fanout.map(work, range(20), mode='thread', concurrency=1)"
CAUGHT = """
try:
    fanout.map(work, range(20), mode='thread', concurrency=1)
except fanout.Interrupted as exc:
    print(sorted(r.index for r in exc.results), flush=True)
    sys.exit(3)
"""


def _interrupt(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    try:
        word, pid = proc.stdout.readline().split()
        assert word == "hanging"
        os.kill(int(pid), signal.SIGINT)  # Ctrl-C, to the Python process only
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def _code(call: str) -> str:
    return textwrap.dedent(SCRIPT.format(call=call))


def test_an_uncaught_interrupted_ends_the_program_by_sigint_like_ctrl_c() -> None:
    status, _, err = _interrupt([sys.executable, "-c", _code(UNCAUGHT)])
    # what CPython does for an uncaught KeyboardInterrupt: die by SIGINT (130 in a shell)
    assert status == -signal.SIGINT, err
    assert "Interrupted: interrupted with 5 results finished" in err


def test_a_shell_sees_status_130() -> None:
    env = {**os.environ, "CODE": _code(UNCAUGHT)}
    status, out, err = _interrupt(["sh", "-c", f'"{sys.executable}" -c "$CODE"; echo "status=$?"'],
                                  env)
    assert "status=130" in out, err
    assert status == 0


def test_a_caught_interrupted_keeps_the_finished_results_and_the_programs_own_status() -> None:
    status, out, err = _interrupt([sys.executable, "-c", _code(CAUGHT)])
    assert status == 3, err
    assert out.strip() == "[0, 1, 2, 3, 4]"
