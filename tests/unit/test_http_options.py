"""Parsing ``fanout http`` option values: --retry-on and --max-body."""

from __future__ import annotations

import click
import pytest

from fanout.cli._http import parse_retry_on, parse_size


def test_retry_on_accepts_codes_ranges_classes_and_none() -> None:
    assert parse_retry_on("429,500,502,503,504") == {429, 500, 502, 503, 504}
    assert parse_retry_on(" 418 , 500-502 ") == {418, 500, 501, 502}
    assert parse_retry_on("5xx") == set(range(500, 600))
    assert parse_retry_on("none") == frozenset() == parse_retry_on("")


@pytest.mark.parametrize("text", ["abc", "99", "600", "503-500", "6xx", "429,,500"])
def test_retry_on_rejects_what_is_not_a_status(text: str) -> None:
    with pytest.raises(click.BadParameter, match="429,500-504"):
        parse_retry_on(text)


def test_sizes() -> None:
    assert parse_size(None) is None
    assert parse_size("65536") == 65536
    assert parse_size("64k") == parse_size("64KB") == parse_size("64KiB") == 65536
    assert parse_size("1M") == 1 << 20 and parse_size("2g") == 2 << 30
    with pytest.raises(click.BadParameter, match="64k"):
        parse_size("lots")
