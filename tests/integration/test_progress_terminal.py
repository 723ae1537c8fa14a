"""The progress bar on a real terminal (a pty): frames read as a user sees them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from _pty import frames, red_texts, run_in_pty

SCRIPT = """
import sys
import time

import fanout

FAIL_EVERY = int(sys.argv[1])


def work(x):
    time.sleep(0.01)
    if FAIL_EVERY and x % FAIL_EVERY == 7:
        raise ValueError(x)
    return x


if __name__ == "__main__":
    results = fanout.map(work, range(240), concurrency=2)  # progress: on, on a terminal
    print("results", len(results))
"""
RATE = re.compile(r"(<?[\d,.]+)/(s|min|h) (recent|overall)")
COUNT = re.compile(r"(\d+)/240 \(\d+%\)")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text(SCRIPT)
    return path


def bar_frames(raw: str) -> list[tuple[int, str]]:
    """(done, frame) for every frame of the bar."""
    return [(int(m.group(1)), f) for f in frames(raw) if (m := COUNT.search(f))]


def test_bar_shows_a_nonzero_rate_once_items_complete_and_no_red_when_none_fail(
    script: Path,
) -> None:
    code, raw = run_in_pty([sys.executable, str(script), "0"], cwd=script.parent)
    assert code == 0, raw
    drawn = bar_frames(raw)
    assert len({done for done, _ in drawn if 0 < done < 240}) >= 2, drawn  # live, not once
    assert "0.0/s" not in raw
    for done, frame in drawn:
        match = RATE.search(frame)
        if done == 0:
            assert "-/s recent" in frame, frame  # no rate yet, not a made-up zero
            continue
        assert match is not None, frame
        assert float(match.group(1).lstrip("<").replace(",", "")) > 0, frame
    last_done, last = drawn[-1]
    assert last_done == 240 and "overall" in last and "ETA" not in last, last
    assert "results 240" in frames(raw)[-1]
    assert "0 failed" in last
    assert not [text for text in red_texts(raw) if "failed" in text]


def test_bar_draws_failures_in_red_when_some_fail(script: Path) -> None:
    code, raw = run_in_pty([sys.executable, str(script), "40"], cwd=script.parent)
    assert code == 0, raw
    assert "6 failed" in red_texts(raw)  # 7, 47, ... 207
    assert "0 failed" not in "".join(red_texts(raw))
