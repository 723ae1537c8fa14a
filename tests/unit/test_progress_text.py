"""What the progress displays print, from snapshots (no threads, no clock)."""

from __future__ import annotations

import io
from dataclasses import replace

from fanout._progress_log import LogView
from fanout._progress_text import Snapshot, plain_line, text_bar

RUNNING = Snapshot(
    description="fetch",
    done=720,
    total=1000,
    failed=3,
    retried=12,
    stuck=0,
    details="",
    elapsed=12.2,
    rate=4712.0,
    eta=5.4,
)


def test_a_running_line_has_count_rate_eta_failures_retries_and_elapsed() -> None:
    assert plain_line(RUNNING) == (
        "fanout fetch: 720/1,000 (72%), 4,712/s recent, ETA 0:00:05, 3 failed, 12 retries, "
        "elapsed 0:00:12"
    )


def test_the_final_line_gives_the_overall_rate_and_the_time_taken() -> None:
    final = replace(RUNNING, done=1000, rate=3815.8, eta=None, elapsed=15.0, final=True)
    assert plain_line(final) == (
        "fanout fetch: finished 1,000/1,000 (100%) in 0:00:15, 3,816/s overall, 3 failed, "
        "12 retries"
    )
    assert plain_line(replace(final, done=10)).startswith("fanout fetch: stopped at 10/1,000 (1%)")


def test_unknown_total_stuck_calls_and_details() -> None:
    snap = replace(RUNNING, total=None, retried=1, stuck=2, details="concurrency 12/64", eta=None)
    assert plain_line(snap) == (
        "fanout fetch: 720, 4,712/s recent, ETA -:--:--, 3 failed, 1 retry, "
        "2 stuck past timeout, concurrency 12/64, elapsed 0:00:12"
    )


def test_control_characters_from_user_text_never_reach_a_log() -> None:
    snap = replace(RUNNING, description="a\x1b[31mb", details="x\ry\nz", retried=None)
    line = plain_line(snap)
    assert line.isprintable()
    assert "retr" not in line


def test_an_empty_total_is_complete() -> None:
    assert replace(RUNNING, done=0, total=0).fraction == 1.0
    assert text_bar(0.5, width=4) == "██░░"
    assert text_bar(None, width=3) == "░░░"


def test_log_view_writes_one_line_per_interval_however_often_it_is_shown() -> None:
    stream = io.StringIO()
    view = LogView(stream, interval=10.0)
    for tick in range(0, 101):  # 25 s of ticks every 0.25 s
        view.show(replace(RUNNING, elapsed=tick * 0.25))
    view.close(replace(RUNNING, final=True, elapsed=25.1))
    lines = stream.getvalue().splitlines()
    assert [line.split("elapsed ")[-1] for line in lines[:-1]] == ["0:00:10", "0:00:20"]
    assert lines[-1].startswith("fanout fetch: stopped at")
