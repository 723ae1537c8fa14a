"""The items of ``fanout run``: formats, line numbers, bad lines, and a pipe read
lazily in a thread with bounded read-ahead."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

from fanout.cli._run_input import (
    BadItem,
    Format,
    InvalidInput,
    Item,
    StreamItems,
    call_item,
    parse,
    read_lines,
)


def items(data: bytes, fmt: Format = Format.JSON, spread: bool = False) -> list[Any]:
    out = []
    for item in parse(data.splitlines(keepends=True), fmt, "in", spread):
        out.append((item.index, item.line, item.value if type(item) is Item else item.message))
    return out


def test_json_lines_skip_blanks_and_number_items_and_lines() -> None:
    assert items(b'\xef\xbb\xbf1\n\n  {"a": [1]}  \r\n"s"') == [
        (0, 1, 1), (1, 3, {"a": [1]}), (2, 4, "s")]


@pytest.mark.parametrize(("line", "message"), [
    (b"{", "in:1: invalid JSON (Expecting property name enclosed in double quotes at column 2)"),
    (b"1 2", "in:1: invalid JSON (Extra data at column 3)"),
    (b'"\xff"', "in:1: invalid UTF-8 (byte 0xff at column 2); save the file as UTF-8"),
])
def test_a_bad_json_line_is_a_bad_item_and_the_rest_goes_on(line: bytes, message: str) -> None:
    assert items(line + b"\n7\n") == [(0, 1, message), (1, 2, 7)]


def test_spread_wants_arrays_or_objects() -> None:
    got = items(b'[1]\n{"a": 1}\n"x"\n', spread=True)
    assert got[:2] == [(0, 1, [1]), (1, 2, {"a": 1})]
    assert got[2][2].startswith("in:3: --spread needs a JSON array")


def test_csv_rows_keep_their_first_line_number_across_quoted_newlines() -> None:
    data = b'\xef\xbb\xbfa,b\n1,"x\ny"\n\n2,\xff\n3,z\n'
    assert items(data, Format.CSV) == [
        (0, 2, {"a": "1", "b": "x\ny"}),
        (1, 5, "in:5: invalid UTF-8 (byte 0xff at column 3); save the file as UTF-8"),
        (2, 6, {"a": "3", "b": "z"}),
    ]


def test_text_lines_keep_inner_whitespace() -> None:
    assert items(b" a \r\n\n\t\nb", Format.LINES) == [(0, 1, " a "), (1, 4, "b")]


def test_call_item_spreads_and_refuses_bad_items() -> None:
    assert call_item(lambda *a: a, True, Item(0, 1, [1, 2])) == (1, 2)
    assert call_item(lambda **k: k, True, Item(0, 1, {"x": 1})) == {"x": 1}
    assert call_item(lambda v: v, False, Item(0, 1, [1, 2])) == [1, 2]
    with pytest.raises(InvalidInput, match="in:3: bad") as info:
        call_item(lambda v: v, False, BadItem(2, 3, "in:3: bad"))
    assert info.value.retryable is False


def test_read_lines_splits_across_reads_and_keeps_a_last_partial_line() -> None:
    r, w = os.pipe()
    os.write(w, b"ab\ncd")
    os.write(w, b"e\n\nf")
    os.close(w)
    assert list(read_lines(r, chunk=2)) == [b"ab\n", b"cde\n", b"\n", b"f"]
    os.close(r)


def test_stream_items_arrive_as_written_with_bounded_read_ahead() -> None:
    r, w = os.pipe()
    stream = StreamItems(read_lines(r), Format.JSON, "<stdin>", False, done={1}, room=2)

    async def main() -> list[Any]:
        got: list[Any] = []
        loop = asyncio.get_running_loop()
        it = stream.__aiter__()
        os.write(w, b"10\n11\n12\n")
        got.append(await asyncio.wait_for(anext(it), 10))  # before the writer is done
        os.write(w, b"13\n14\n15\n16\n")
        # the reader keeps at most `room` items waiting for the run
        for _ in range(200):
            await asyncio.sleep(0.005)
        got.append(stream.count)
        os.close(w)
        got.extend([item async for item in it])
        got.append(loop.is_running())
        return got

    got = asyncio.run(main())
    first, count_when_full, *rest, _ = got
    assert (first.index, first.value) == (0, 10)
    assert count_when_full <= 1 + 1 + 2 + 1  # taken + skipped (index 1) + room + one in hand
    assert [(i.index, i.value) for i in rest] == [(2, 12), (3, 13), (4, 14), (5, 15), (6, 16)]
    assert stream.count == 7 and stream.skipped == 1
    for thread in [t for t in threading.enumerate() if t.name == "fanout-input"]:
        thread.join(timeout=10)  # it saw the end of the pipe: it ends by itself
        assert not thread.is_alive()
    os.close(r)
