"""``fanout chat`` as a real process: kill -9 then --resume leaves every id exactly once,
Ctrl-C keeps what was answered and says how to resume, ``| head`` stops quietly."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _lines import wait_for_lines

from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]
KEY = "sk-chat-process-77a1b2c3d4"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    return {**env, "OPENAI_API_KEY": KEY, **extra}


def spawn(prompts: Path, out: str, url: str, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "fanout", "chat", str(prompts), "-o", out, "--model", "m",
         "--base-url", url, *args], env=environment(), **kw)


def write_prompts(path: Path, n: int) -> list[str]:
    ids = [f"p{i}" for i in range(n)]
    path.write_text("".join(json.dumps({"id": key, "prompt": f"What is {i}*3?"}) + "\n"
                            for i, key in enumerate(ids)))
    return ids


def test_kill_9_then_resume_leaves_every_id_exactly_once(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server(latency=0.01, api_key=KEY)
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "answers.jsonl"
    ids = write_prompts(prompts, 300)
    rng = random.Random(7)
    for threshold in (rng.randint(1, 40), rng.randint(90, 160), rng.randint(200, 280)):
        proc = spawn(prompts, str(out), server.url, "--resume", "-c", "20")
        wait_for_lines(proc, out, threshold)
        proc.kill()
        proc.communicate(timeout=30)
    proc = spawn(prompts, str(out), server.url, "--resume", "-c", "20")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(r["id"] for r in recs) == Counter(ids)
    assert all(r["ok"] and r["answer"] == str(3 * int(r["id"][1:])) for r in recs)
    assert out.read_bytes().endswith(b"\n")
    assert KEY not in out.read_text() + err.decode()


def test_ctrl_c_keeps_the_answers_and_says_how_to_resume(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server(latency=0.05, api_key=KEY)
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "answers.jsonl"
    ids = write_prompts(prompts, 200)
    proc = spawn(prompts, str(out), server.url, "-c", "5")
    wait_for_lines(proc, out, 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    assert "interrupted: " in stderr and "Traceback" not in stderr
    assert f"finished records are in {out}; rerun with: fanout chat {prompts}" in stderr
    assert stderr.rstrip().endswith("--resume")
    first = Counter(json.loads(line)["id"] for line in out.read_text().splitlines())
    assert 10 <= len(first) < 200 and set(first.values()) == {1}
    proc = spawn(prompts, str(out), server.url, "-c", "50", "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    seen = Counter(json.loads(line)["id"] for line in out.read_text().splitlines())
    assert seen == Counter(ids)


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head(1)")
def test_into_head_stops_quietly(make_mock_server: MakeServer, tmp_path: Path) -> None:
    server = make_mock_server(latency=0.01, api_key=KEY)
    prompts = tmp_path / "prompts.jsonl"
    write_prompts(prompts, 500)
    fan = spawn(prompts, "-", server.url, "-c", "4")
    assert fan.stdout is not None
    head = subprocess.Popen(["head", "-3"], stdin=fan.stdout, stdout=subprocess.PIPE)
    fan.stdout.close()  # head holds the only read end: it exits, the pipe breaks
    got, _ = head.communicate(timeout=60)
    _, err = fan.communicate(timeout=60)
    assert fan.returncode == 141, err.decode()
    assert [json.loads(line)["id"] for line in got.splitlines()] == ["p0", "p1", "p2"]
    assert err.decode() == ""
