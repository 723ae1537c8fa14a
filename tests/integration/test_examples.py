"""Every example in examples/ runs as a real program, against a real mock server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout.mock import MockServer

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """A mock API in its own process, 20 ms latency, shared by the examples."""
    with MockServer.spawn(latency=0.02) as server:
        yield server.url


def run(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_fetch_todos_against_a_given_server(api: str) -> None:
    out = run("fetch_todos.py", "--url", api, "--count", "30")
    assert out.startswith("fetched 30 todos in ")


def test_fetch_todos_takes_the_url_from_the_environment(api: str) -> None:
    out = run("fetch_todos.py", "--count", "12", env={"FANOUT_URL": api})
    assert out.startswith("fetched 12 todos in ")


def test_fetch_todos_starts_its_own_mock_server_when_none_is_given() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FANOUT_URL"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "fetch_todos.py"), "--count", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("fetched 5 todos")


def test_chat_batch_answers_every_prompt_correctly(api: str) -> None:
    out = run("chat_batch.py", "--url", api, "--count", "20", "--rate", "200/s")
    assert out.startswith("20 answers in ") and out.rstrip().endswith("0 wrong")


def test_chat_batch_adapts_to_a_rate_limited_server() -> None:
    # its own server allows 40/s; asking for 200/s gets 429s, which are retried
    out = run("chat_batch.py", "--count", "60", "--rate", "200/s")
    assert out.startswith("60 answers in ") and out.rstrip().endswith("0 wrong")
    retries = int(out.split(", ")[1].split()[0])
    assert retries > 0  # 60 requests at 200/s cannot all fit in 40/s without a 429


def test_count_lines_counts_every_line(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text("line\n" * i)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big.txt").write_text("x\n" * 1000)
    out = run("count_lines.py", str(tmp_path))
    assert f"{sum(range(30)) + 1000:,} lines in 31 files" in out
    assert out.splitlines()[0].split()[0] == "1,000"


def test_factorial_batch_gets_the_same_answers_in_processes() -> None:
    out = run("factorial_batch.py", "--count", "4", "--n", "2000")
    assert out.startswith("4 factorials of ~2000: sequential ")


def test_wrap_sync_library_keeps_the_loop_free(api: str) -> None:
    out = run("wrap_sync_library.py", "--url", api, "--count", "10")
    assert out.startswith("10/10 todos from a sync client")
