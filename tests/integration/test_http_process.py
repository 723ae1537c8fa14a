"""``fanout http`` as a real process: kill -9 + --resume exactly once, SIGINT/SIGTERM,
and an output file that stops accepting data (EFBIG)."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _lines import count_lines, wait_for_lines
from _pty import run_in_pty

from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """fanout http honours HTTP(S)_PROXY: requests to the loopback servers here go direct."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def write_requests(path: Path, url: str, n: int, prefix: str) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    with path.open("w") as fh:
        for i, key in enumerate(ids):
            fh.write(json.dumps({"id": key, "url": f"{url}/todos/{i % 200 + 1}?id={key}"}) + "\n")
    return ids


def spawn(req: Path, out: Path, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "fanout", "http", str(req), "-o", str(out), *args], **kw
    )


def ids_in(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["id"] for line in path.read_text().splitlines())


def test_kill_9_at_random_moments_then_resume_leaves_every_id_exactly_once(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server(latency=0.01)
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    ids = write_requests(req, server.url, 400, "k")
    rng = random.Random(1234)
    thresholds = [0, rng.randint(1, 60), rng.randint(100, 200), rng.randint(250, 350)]
    for i, threshold in enumerate(thresholds):
        proc = spawn(req, out, "--resume", "-c", "20", "--retries", "2")
        wait_for_lines(proc, out, threshold)
        proc.kill()
        proc.communicate(timeout=30)
        if i == 1:
            with out.open("ab") as fh:  # what a kill in the middle of a write leaves
                fh.write(b'{"id": "k1", "index": 1, "ok": tr')
    proc = spawn(req, out, "--resume", "-c", "20", "--retries", "2")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    seen = ids_in(out)
    assert set(seen) == set(ids)
    assert all(count == 1 for count in seen.values())
    assert all(json.loads(line)["ok"] for line in out.read_text().splitlines())
    by_id = server.stats()["by_id"]
    assert all(by_id.get(key, 0) >= 1 for key in ids)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_keeps_finished_records_and_resume_completes(
    make_mock_server: MakeServer, tmp_path: Path, signum: int, code: int
) -> None:
    server = make_mock_server(latency=0.05)
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    ids = write_requests(req, server.url, 300, "s")
    proc = spawn(req, out, "-c", "10")
    wait_for_lines(proc, out, 20)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err.decode()
    stderr = err.decode()
    assert "interrupted" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    first = ids_in(out)
    assert 20 <= len(first) < 300
    assert all(count == 1 for count in first.values())
    assert out.read_bytes().endswith(b"\n")

    proc = spawn(req, out, "--resume", "-c", "50")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    seen = ids_in(out)
    assert set(seen) == set(ids) and all(count == 1 for count in seen.values())


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_output_that_cannot_grow_stops_sending_exits_74_and_resume_completes(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server(latency=0.005)
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    ids = write_requests(req, server.url, 300, "f")
    concurrency = 10
    proc = spawn(req, out, "-c", str(concurrency), preexec_fn=_limit_file_size(6000))
    _, err = proc.communicate(timeout=60)
    stderr = err.decode().strip()
    assert proc.returncode == 74, stderr
    assert len(stderr.splitlines()) == 1
    assert str(out) in stderr and "File too large" in stderr
    written = count_lines(out)
    assert 0 < written < 300
    # it stopped sending at once: at most the requests in flight went out after the failure
    assert server.stats()["total"] <= written + 3 * concurrency

    proc = spawn(req, out, "--resume", "-c", str(concurrency))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    seen = ids_in(out)
    assert set(seen) == set(ids) and all(count == 1 for count in seen.values())


@pytest.mark.skipif(not os.path.exists("/proc/version"), reason="needs Linux /proc")
def test_an_output_that_refuses_writes_is_exit_74(make_mock_server: MakeServer,
                                                  tmp_path: Path) -> None:
    server = make_mock_server()
    req = tmp_path / "req.jsonl"
    write_requests(req, server.url, 200, "p")
    proc = spawn(req, Path("/proc/version"), "-c", "2")  # opens, but every write is EIO
    _, err = proc.communicate(timeout=60)
    stderr = err.decode().strip()
    assert proc.returncode == 74 and len(stderr.splitlines()) == 1
    assert "/proc/version" in stderr and "EIO" in stderr
    # it stops at the first failed write: a few loop turns of 2 requests, not 200
    assert server.stats()["total"] <= 20


def test_on_a_signal_records_waiting_behind_a_slow_one_are_still_written(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server()
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    fast = [f"fast{i}" for i in range(20)]
    with req.open("w") as fh:
        fh.write(json.dumps({"id": "slow", "url": f"{server.url}/delay/2?id=slow"}) + "\n")
        for key in fast:
            fh.write(json.dumps({"id": key, "url": f"{server.url}/todos/1?id={key}"}) + "\n")
    proc = spawn(req, out, "-c", "21")
    deadline = time.monotonic() + 30
    while sum(server.stats()["by_id_ok"].get(k, 0) for k in fast) < len(fast):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    assert count_lines(out) == 0  # in input order, all of them wait for "slow"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    seen = ids_in(out)
    assert "slow" not in seen and all(count == 1 for count in seen.values())
    # answered by the server before the signal; a response still unread in a socket
    # at that instant is cancelled like any call in flight, hence a small tolerance
    assert len(seen) >= len(fast) - 2
    proc = spawn(req, out, "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert ids_in(out) == Counter(["slow", *fast])


def test_progress_bar_on_a_terminal_and_none_when_piped(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server(latency=0.01)
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    write_requests(req, server.url, 40, "b")
    code, text = run_in_pty([sys.executable, "-m", "fanout", "http", str(req), "-o", str(out),
                             "-c", "4"])
    assert code == 0
    assert "40/40" in text and "http" in text and "done: 40 requests" in text

    proc = spawn(req, out)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert b"\x1b[" not in err and b"40/40" not in err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_sending_exits_cleanly_with_nothing_sent(
    tmp_path: Path, signum: int, code: int
) -> None:
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fanout", "http", "-", "-o", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(spool_dir)},
    )
    assert proc.stdin is not None
    proc.stdin.write(b"http://127.0.0.1:9/never\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    # it is copying standard input: handlers are on (tempfile's first use also creates
    # and removes a probe file there: wait for the spool itself)
    while not list(spool_dir.glob("fanout-stdin-*")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert err.decode().strip() == "Error: interrupted before anything was sent"
    assert not out.exists() and not list(spool_dir.iterdir())
