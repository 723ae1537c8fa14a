"""fanout run --executor MODULE:NAME: a configured executor from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BACKENDS = '''
import fanout

class Tagging(fanout.ThreadExecutor):
    """A thread executor configured with a tag its calls' results carry."""

    def __init__(self, tag):
        super().__init__()
        self.tag = tag

    def prepare(self, fn, concurrency, timeout):
        super().prepare(lambda x: f"{self.tag}:{fn(x)}", concurrency, timeout)


def make():
    return Tagging("configured")


instance = Tagging("instance")
not_one = 42


def square(x):
    return x * x
'''


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "backends.py").write_text(BACKENDS)
    (tmp_path / "in.jsonl").write_text("1\n2\n3\n")
    return subprocess.run([sys.executable, "-m", "fanout", "run", "backends:square", "in.jsonl",
                           "-o", "out.jsonl", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_a_factory_or_an_instance_configures_the_run(tmp_path: Path) -> None:
    for spec, tag in (("backends:make", "configured"), ("backends:instance", "instance")):
        done = _run(tmp_path, "--executor", spec)
        assert done.returncode == 0, done.stderr
        lines = (tmp_path / "out.jsonl").read_text().splitlines()
        assert [json.loads(line)["value"] for line in lines] == [f"{tag}:{n}" for n in (1, 4, 9)]
        assert "mode thread: executor=Tagging(...)" in done.stderr


def test_a_bad_executor_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, needle in ((["--executor", "backends:not_one"], "expected a fanout executor"),
                         (["--executor", "backends"], "expected MODULE:NAME"),
                         (["--executor", "backends:make", "--mode", "process"], "disagree")):
        done = _run(tmp_path, *args)
        assert done.returncode == 2, done.stderr
        assert needle in done.stderr and done.stderr.count("\n") == 1, done.stderr
