"""The flush policy shared by ``fanout run`` and ``fanout http``: the lines of one
loop turn go out in one write at its end; a failed write is reported once."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from fanout._journal import Journal, JournalError, LineWriter, open_journal


class CountingJournal(Journal):
    def __init__(self, fail: bool = False) -> None:
        super().__init__("<test>", None)
        self.writes: list[bytes] = []
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail:
            raise JournalError(self.path, BrokenPipeError(32, "Broken pipe"))
        self.writes.append(data)


def test_lines_of_one_loop_turn_go_out_in_one_write_at_its_end() -> None:
    async def main() -> list[list[bytes]]:
        journal = CountingJournal()
        writer = LineWriter(journal, asyncio.get_running_loop(), lambda exc: None)
        seen = []
        writer.add(b"a\n")
        writer.add(b"b\n")
        seen.append(list(journal.writes))  # nothing yet: still this turn
        await asyncio.sleep(0)
        seen.append(list(journal.writes))
        writer.add(b"c\n")
        writer.flush()  # the end of a run writes what is queued at once
        seen.append(list(journal.writes))
        await asyncio.sleep(0)
        return [*seen, journal.writes]

    before, after_turn, after_flush, final = asyncio.run(main())
    assert before == [] and after_turn == [b"a\nb\n"]
    assert after_flush == final == [b"a\nb\n", b"c\n"]


def test_a_failed_write_is_reported_once_and_nothing_more_is_written() -> None:
    async def main() -> tuple[list[JournalError], bool]:
        errors: list[JournalError] = []
        writer = LineWriter(CountingJournal(fail=True), asyncio.get_running_loop(),
                            errors.append)
        writer.add(b"a\n")
        await asyncio.sleep(0)
        writer.add(b"b\n")
        writer.flush()
        await asyncio.sleep(0)
        return errors, writer.failed

    errors, failed = asyncio.run(main())
    assert failed and len(errors) == 1 and errors[0].errno == 32


def test_stdout_is_written_through_a_descriptor_of_its_own(tmp_path: Path) -> None:
    target = tmp_path / "stdout.txt"
    with target.open("w") as fake_stdout, contextlib.redirect_stdout(fake_stdout):
        journal, found = open_journal("-", resume=False)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fake_stdout.fileno())  # "descriptor 1" is pointed elsewhere
        os.close(devnull)
        journal.write(b'{"index": 0}\n')
        journal.close()
    # the records still reach what standard output was when the journal was opened
    assert target.read_bytes() == b'{"index": 0}\n'
    assert found.done == set()
