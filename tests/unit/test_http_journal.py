"""The durable output file: append, resume, torn-line repair, dropping failed records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fanout._journal import CorruptJournal, JournalError, drop_records, open_journal, scan


def rec(key: str | int, ok: bool = True) -> bytes:
    return (json.dumps({"id": key, "ok": ok}) + "\n").encode()


def ids(path: Path) -> list[str | int]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def test_new_run_truncates_and_appends_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old stuff\n")
    journal, found = open_journal(str(out), resume=False)
    journal.write(rec("a") + rec("b"))
    journal.write(rec("c"))
    journal.close()
    assert found.done == set()
    assert ids(out) == ["a", "b", "c"]


def test_resume_reports_done_and_failed_keys(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec("a") + rec("b", ok=False) + rec(3))
    journal, found = open_journal(str(out), resume=True)
    journal.write(rec("d"))
    journal.close()
    assert found.done == {"a", "b", 3}
    assert found.failed == {"b"}
    assert ids(out) == ["a", "b", 3, "d"]


def test_resume_on_a_missing_file_starts_empty(tmp_path: Path) -> None:
    journal, found = open_journal(str(tmp_path / "new.jsonl"), resume=True)
    journal.close()
    assert found.done == set() and found.records == 0


@pytest.mark.parametrize("tail", [b'{"id": "c", "o', b'{"id": "c", "ok": true}', b"{"])
def test_a_torn_last_line_is_cut_off(tmp_path: Path, tail: bytes) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec("a") + rec("b") + tail)
    found = scan(str(out))
    assert found.done == {"a", "b"}
    assert found.repaired == len(tail)
    assert out.read_bytes() == rec("a") + rec("b")


def test_scan_reads_across_chunk_boundaries(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    big = "x" * 5000
    lines = [json.dumps({"id": i, "ok": True, "pad": big}) + "\n" for i in range(600)]
    out.write_text("".join(lines))
    found = scan(str(out))
    assert found.done == set(range(600))
    assert found.repaired == 0


def test_a_foreign_file_is_refused_not_appended_to(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec("a") + b"this is not json\n" + rec("b"))
    with pytest.raises(CorruptJournal, match="line 2"):
        open_journal(str(out), resume=True)


def test_retry_failed_rewrites_the_file_without_failed_records(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec("a") + rec("b", ok=False) + rec("c") + rec("d", ok=False) + b'{"id')
    journal, found = open_journal(str(out), resume=True, drop_failed=True)
    assert found.done == {"a", "c"}
    assert found.dropped == 2
    journal.write(rec("b") + rec("d"))
    journal.close()
    assert ids(out) == ["a", "c", "b", "d"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".fanout-")]


def test_drop_records_keeps_the_file_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec("a") + rec("b", ok=False))
    out.chmod(0o600)
    assert drop_records(str(out), {"b"}) == 1
    assert out.stat().st_mode & 0o777 == 0o600
    assert ids(out) == ["a"]


def test_unwritable_output_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="Is a directory"):
        open_journal(str(tmp_path), resume=False)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_a_journal_error_naming_the_path_and_errno() -> None:
    journal, _ = open_journal("/dev/full", resume=False)
    try:
        with pytest.raises(JournalError) as info:
            journal.write(rec("a"))
    finally:
        journal.close()
    assert "/dev/full" in str(info.value) and "ENOSPC" in str(info.value)
    assert info.value.errno == 28
