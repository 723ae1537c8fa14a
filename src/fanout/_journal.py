"""Durable JSONL output: every record reaches the file the moment it is written,
and a later run can resume from whatever a crash left behind.

Records are appended with ``os.write`` on an unbuffered descriptor, whole lines
at a time, so after a ``kill -9`` the file holds every record written before it,
plus at most one torn last line. ``open_journal(resume=True)`` cuts that torn
line off (truncates to the last newline) and reports the keys already present;
with ``drop_failed`` it first rewrites the file without the failed records
(atomically: a temporary file in the same directory, then ``os.replace``), so
that redoing them leaves each key in the file exactly once.

``LineWriter`` is the flush policy both ``fanout run`` and ``fanout http`` use:
the lines finished during one turn of the event loop go to the file in one
write at the end of that turn, so a record reaches the file as soon as it is
done, without a system call per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_CHUNK = 1 << 20


class JournalError(Exception):
    """The output file could not be read or written; ``errno`` is kept."""

    def __init__(self, path: str, exc: OSError | str) -> None:
        self.path = path
        if isinstance(exc, OSError):
            self.errno = exc.errno
            detail = exc.strerror or str(exc)
            if exc.errno is not None:
                import errno as errno_names

                name = errno_names.errorcode.get(exc.errno, str(exc.errno))
                detail = f"{detail} ({name})"
        else:
            self.errno = None
            detail = exc
        super().__init__(f"{path}: {detail}")


class CorruptJournal(JournalError):
    """The output exists but is not a file of records this tool wrote."""


@dataclass
class Scan:
    """What an existing output file holds."""

    done: set[Any] = field(default_factory=set)
    failed: set[Any] = field(default_factory=set)
    records: int = 0
    #: bytes cut off the end (a torn last line)
    repaired: int = 0
    #: failed records removed by ``drop_failed``
    dropped: int = 0


def _lines(fd: int) -> Any:
    """(end offset, line without newline) of each complete line; then (offset, tail)
    for a last line without a newline, if any."""
    pending = b""
    offset = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        pending += chunk
        start = 0
        while True:
            nl = pending.find(b"\n", start)
            if nl < 0:
                break
            offset += nl + 1 - start
            yield offset, pending[start:nl], True
            start = nl + 1
        pending = pending[start:]
    if pending:
        yield offset, pending, False


def scan(path: str, key: str = "id", *, repair: bool = True) -> Scan:
    """Read ``path``: keys done, keys whose record has ``ok`` false, torn tail cut off."""
    result = Scan()
    try:
        fd = os.open(path, os.O_RDWR if repair else os.O_RDONLY)
    except FileNotFoundError:
        return result
    except OSError as exc:
        raise JournalError(path, exc) from None
    try:
        good_end = 0
        lineno = 0
        for end, line, complete in _lines(fd):
            if not complete:
                result.repaired = len(line)
                break
            lineno += 1
            if not line.strip():
                good_end = end
                continue
            try:
                record = json.loads(line)
                value = record[key]
            except (ValueError, KeyError, TypeError):
                raise CorruptJournal(
                    path, f"line {lineno} is not a record with an {key!r} field; "
                    "cannot resume from this file (use another output file)"
                ) from None
            result.records += 1
            result.done.add(value)
            if record.get("ok") is False:
                result.failed.add(value)
            else:
                result.failed.discard(value)
            good_end = end
        if result.repaired and repair:
            os.ftruncate(fd, good_end)
    except OSError as exc:
        raise JournalError(path, exc) from None
    finally:
        os.close(fd)
    return result


def drop_records(path: str, keys: set[Any], key: str = "id") -> int:
    """Rewrite ``path`` without the records whose ``key`` is in ``keys``; atomic."""
    if not keys:
        return 0
    directory = os.path.dirname(os.path.abspath(path))
    dropped = 0
    try:
        fd_in = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise JournalError(path, exc) from None
    tmp_fd, tmp_path = tempfile.mkstemp(prefix=".fanout-", suffix=".tmp", dir=directory)
    try:
        out: list[bytes] = []
        size = 0
        for _end, line, complete in _lines(fd_in):
            if not complete:
                break
            if line.strip() and json.loads(line).get(key) in keys:
                dropped += 1
                continue
            out.append(line + b"\n")
            size += len(line) + 1
            if size >= _CHUNK:
                _write_all(tmp_fd, b"".join(out))
                out, size = [], 0
        _write_all(tmp_fd, b"".join(out))
        os.fsync(tmp_fd)
        with contextlib.suppress(OSError):
            os.fchmod(tmp_fd, os.stat(path).st_mode & 0o7777)
        os.close(tmp_fd)
        tmp_fd = -1
        os.replace(tmp_path, path)
        tmp_path = ""
    except OSError as exc:
        raise JournalError(path, exc) from None
    finally:
        os.close(fd_in)
        if tmp_fd >= 0:
            os.close(tmp_fd)
        if tmp_path:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
    return dropped


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Journal:
    """An append-only JSONL file; ``write`` puts whole lines in the file at once."""

    def __init__(self, path: str, fd: int | None, stream: Any = None) -> None:
        self.path = path
        self._fd = fd
        self._stream = stream

    def write(self, data: bytes) -> None:
        """Append ``data`` (complete lines); ``JournalError`` if the file refuses it."""
        try:
            if self._fd is not None:
                _write_all(self._fd, data)
            else:
                self._stream.write(data)
                self._stream.flush()
        except OSError as exc:
            raise JournalError(self.path, exc) from None

    def close(self) -> None:
        if self._fd is not None and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_journal(
    path: str, *, resume: bool, drop_failed: bool = False, key: str = "id"
) -> tuple[Journal, Scan]:
    """Open ``path`` for appending records (``"-"``: standard output).

    Without ``resume`` the file is emptied. With it, a torn last line is cut off,
    failed records are removed first when ``drop_failed``, and the returned scan
    says which keys are done. Standard output is written through a descriptor
    of its own (a duplicate of descriptor 1), so the records still go there
    when descriptor 1 is later pointed elsewhere.
    """
    if path == "-":
        try:
            fd = os.dup(sys.stdout.fileno())
        except (AttributeError, ValueError, io.UnsupportedOperation):
            return Journal("<stdout>", None, sys.stdout.buffer), Scan()  # no descriptor
        return Journal("<stdout>", fd), Scan()
    found = Scan()
    if resume:
        found = scan(path, key)
        if drop_failed and found.failed:
            found.dropped = drop_records(path, found.failed, key)
            found.done -= found.failed
            found.failed = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if resume else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise JournalError(path, exc) from None
    return Journal(path, fd), found


class LineWriter:
    """Collects finished lines and writes them in one go once per loop turn.

    A write that fails calls ``on_error`` (with the ``JournalError``) once and
    nothing more is written: the run is expected to wind down.
    """

    def __init__(self, journal: Journal, loop: asyncio.AbstractEventLoop,
                 on_error: Callable[[JournalError], None]) -> None:
        self._journal = journal
        self._loop = loop
        self._on_error = on_error
        self._pending: list[bytes] = []
        self._scheduled = False
        self.failed = False

    def add(self, line: bytes) -> None:
        """Queue one line (newline included) for the write at the end of this turn."""
        if self.failed:
            return
        self._pending.append(line)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is queued now."""
        if not self._pending or self.failed:
            return
        data = b"".join(self._pending)
        self._pending = []
        try:
            self._journal.write(data)
        except JournalError as exc:
            self.failed = True
            self._on_error(exc)
