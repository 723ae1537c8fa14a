"""The input of ``fanout run``: items from a JSONL, text or CSV file, or a pipe,
and how one item is handed to the user's function.

Formats (``Format``): ``json`` one JSON value per line (the default); ``lines``
each line is a string; ``csv`` each row is a dict keyed by the header (values
are strings). Blank lines are skipped, a UTF-8 byte-order mark is accepted.
``index`` is an item's position among the items (0-based), ``line`` its line.

A file is read twice: once to validate every item (``validate``: nothing runs
before the whole input is known good, and the count gives the progress bar its
total), then again to feed the run (``FileItems``). A pipe cannot be read twice:
``StreamItems`` reads it in a thread of its own and hands items over as the run
asks for them, checked as they come; a bad one is that item's failure
(``InvalidInput``), since the rest of the pipe is not there yet to be checked.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import json
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from typing import IO, Any

# json.loads minus its per-call argument handling
_raw_decode = json.JSONDecoder().raw_decode


class Format(Enum):
    JSON = "json"
    LINES = "lines"
    CSV = "csv"


class InvalidInput(Exception):
    """An item that could not be read (``FILE:LINE: what is wrong``); never retried."""

    retryable = False


@dataclass(frozen=True, slots=True)
class Item:
    """One input item, with where it came from."""

    index: int
    line: int
    value: Any

    @property
    def id(self) -> str | int | None:
        """The item's ``id`` when it is an object with a string or integer one."""
        value = self.value
        if isinstance(value, dict):
            key = value.get("id")
            if isinstance(key, (str, int)) and not isinstance(key, bool):
                return key
        return None


@dataclass(frozen=True, slots=True)
class BadItem:
    """An item of a pipe that could not be read; its call fails with ``InvalidInput``."""

    index: int
    line: int
    message: str

    id = None


def call_item(fn: Callable[..., Any], spread: bool, item: Item | BadItem) -> Any:
    """Call ``fn`` on one item (the wrapper the core runs; picklable as a partial)."""
    if type(item) is BadItem:
        raise InvalidInput(item.message)
    value = item.value  # type: ignore[union-attr]
    if spread:
        return fn(**value) if isinstance(value, dict) else fn(*value)
    return fn(value)


async def acall_item(fn: Callable[..., Any], spread: bool, item: Item | BadItem) -> Any:
    """``call_item`` for a coroutine function."""
    if type(item) is BadItem:
        raise InvalidInput(item.message)
    value = item.value  # type: ignore[union-attr]
    if spread:
        return await (fn(**value) if isinstance(value, dict) else fn(*value))
    return await fn(value)


# ------------------------------------------------------------------ parsing
class _LineError(ValueError):
    """What is wrong with one line (the caller adds ``FILE:LINE:``)."""


def _describe(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _LineError(
            f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "save the file as UTF-8"
        ) from None


def _numbered(handle: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for every line, a byte-order mark at the start removed."""
    lines = iter(handle)
    first = next(lines, None)
    if first is None:
        return iter(())
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8):]
    return chain([(1, first)], enumerate(lines, 2))


def _check_spread(value: Any) -> None:
    if not isinstance(value, (list, dict)):
        raise _LineError(
            f"--spread needs a JSON array (passed as *args) or object (passed as **kwargs) "
            f"(got {_describe(value)})"
        )


def _json_items(lines: Iterable[tuple[int, bytes]], label: str,
                spread: bool) -> Iterator[Item | BadItem]:
    index = 0
    for lineno, raw in lines:
        if not raw.strip():
            continue
        try:
            text = _decode(raw).rstrip()
            try:
                value, end = _raw_decode(text, len(text) - len(text.lstrip()))
            except json.JSONDecodeError as exc:
                raise _LineError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            if end != len(text):
                rest = text[end:]
                column = end + len(rest) - len(rest.lstrip()) + 1
                raise _LineError(f"invalid JSON (Extra data at column {column})")
            if spread:
                _check_spread(value)
            yield Item(index, lineno, value)
        except _LineError as exc:
            yield BadItem(index, lineno, f"{label}:{lineno}: {exc}")
        index += 1


def _text_items(lines: Iterable[tuple[int, bytes]], label: str) -> Iterator[Item | BadItem]:
    index = 0
    for lineno, raw in lines:
        if not raw.strip():
            continue
        try:
            text = _decode(raw)
            yield Item(index, lineno, text.removesuffix("\n").removesuffix("\r"))
        except _LineError as exc:
            yield BadItem(index, lineno, f"{label}:{lineno}: {exc}")
        index += 1


def _csv_items(lines: Iterable[tuple[int, bytes]], label: str) -> Iterator[Item | BadItem]:
    """Rows as dicts keyed by the header; a row may span lines (a quoted newline)."""
    undecodable: dict[int, str] = {}

    def texts() -> Iterator[str]:
        for lineno, raw in lines:
            try:
                yield _decode(raw)
            except _LineError as exc:
                undecodable[lineno] = str(exc)
                yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(texts())
    header: list[str] | None = None
    header_error: str | None = None
    index = 0
    while True:
        first = reader.line_num + 1
        error: str | None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row, error = [], f"invalid CSV ({exc})"
        else:
            error = next((undecodable.pop(n) for n in range(first, reader.line_num + 1)
                          if n in undecodable), None)
            if not row and error is None:
                continue  # a blank line
        if header is None and header_error is None:
            if error is None:
                header = row
                dup = next((name for i, name in enumerate(row) if name in row[:i]), None)
                if dup is not None:
                    header_error = f"line {first}: duplicate column {dup!r} in the header"
            else:
                header_error = f"line {first}: {error}"
            continue
        if error is None and header_error is not None:
            error = f"the CSV header is not valid ({header_error})"
        if error is None and header is not None and len(row) != len(header):
            plural = "" if len(row) == 1 else "s"
            error = f"a row of {len(row)} field{plural}, but the header has {len(header)}"
        if error is not None:
            yield BadItem(index, first, f"{label}:{first}: {error}")
        else:
            assert header is not None
            yield Item(index, first, dict(zip(header, row, strict=True)))
        index += 1


def parse(handle: Iterable[bytes], fmt: Format, label: str,
          spread: bool) -> Iterator[Item | BadItem]:
    """Every item of ``handle``, in order; a bad one as a ``BadItem`` naming file:line."""
    lines = _numbered(handle)
    if fmt is Format.LINES:
        return _text_items(lines, label)
    if fmt is Format.CSV:
        return _csv_items(lines, label)
    return _json_items(lines, label, spread)


# ------------------------------------------------------------------- sources
class Source:
    """A regular file to read from the start, as many times as needed; standard
    input redirected from a file is read through a duplicate of descriptor 0."""

    def __init__(self, path: str, fd: int | None = None) -> None:
        self.path = path
        self._fd = fd
        self._start = os.lseek(fd, 0, os.SEEK_CUR) if fd is not None else 0

    def open(self) -> IO[bytes]:
        if self._fd is None:
            return open(self.path, "rb")
        os.lseek(self._fd, self._start, os.SEEK_SET)
        return open(os.dup(self._fd), "rb")


def validate(source: Source, fmt: Format, label: str, spread: bool) -> int:
    """The number of items; ``InvalidInput`` at the first bad one."""
    count = 0
    with source.open() as handle:
        for item in parse(handle, fmt, label, spread):
            if type(item) is BadItem:
                raise InvalidInput(item.message)
            count += 1
    return count


class FileItems:
    """The items of a validated file not yet done; sized, so the progress bar has
    a total and an ETA."""

    def __init__(self, source: Source, fmt: Format, label: str, spread: bool,
                 count: int, done: set[int]) -> None:
        self._source = source
        self._fmt = fmt
        self._label = label
        self._spread = spread
        self._done = done
        #: items in the file, and how many of them are left to do
        self.count = count
        self._left = count - sum(1 for i in done if 0 <= i < count)

    def __len__(self) -> int:
        return self._left

    def __iter__(self) -> Iterator[Item | BadItem]:
        done = self._done
        with self._source.open() as handle:
            for item in parse(handle, self._fmt, self._label, self._spread):
                if item.index not in done:
                    yield item


def read_lines(fd: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The lines of descriptor ``fd`` as they arrive (the last may lack a newline).

    Plain ``os.read`` calls, no buffered file object: a daemon thread blocked here
    holds no lock that the interpreter needs at exit.
    """
    pending = b""
    while True:
        data = os.read(fd, chunk)
        if not data:
            break
        pending += data
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield pending[start:end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending


class StreamItems:
    """The items of a pipe, read in a thread of its own as the run asks for them
    (at most ``room`` read ahead), so results come out while the producer runs.

    The reader is a daemon thread: blocked on a pipe that never ends, it does
    not keep the process alive once the run is over.
    """

    def __init__(self, lines: Iterable[bytes], fmt: Format, label: str, spread: bool,
                 done: set[int], room: int = 1024) -> None:
        self._lines = lines
        self._fmt = fmt
        self._label = label
        self._spread = spread
        self._done = done
        self._room = threading.Semaphore(room)
        self._lock = threading.Lock()
        self._ready: deque[Item | BadItem] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self._error: OSError | None = None
        self._closed = False
        #: items read so far, and how many of them were skipped (already done)
        self.count = 0
        self.skipped = 0

    def __aiter__(self) -> AsyncIterator[Item | BadItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[Item | BadItem]:
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="fanout-input", daemon=True).start()
        try:
            while True:
                item = await self._next()
                if item is None:
                    return
                yield item
        finally:
            self._closed = True
            self._room.release()  # a reader waiting for room sees it is closed

    async def _next(self) -> Item | BadItem | None:
        assert self._loop is not None
        while True:
            with self._lock:
                if self._ready:
                    item = self._ready.popleft()
                    break
                if self._ended:
                    if self._error is not None:
                        raise self._error
                    return None
                waiter = self._waiter = self._loop.create_future()
            await waiter
        self._room.release()
        return item

    # the reader thread
    def _read(self) -> None:
        error: OSError | None = None
        try:
            for item in parse(self._lines, self._fmt, self._label, self._spread):
                self.count += 1
                if item.index in self._done:
                    self.skipped += 1
                    continue
                self._room.acquire()
                if self._closed:
                    return
                with self._lock:
                    self._ready.append(item)
                    waiter, self._waiter = self._waiter, None
                self._wake(waiter)
        except OSError as exc:
            error = exc
        with self._lock:
            self._ended = True
            self._error = error
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_set, waiter)


def _set(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
