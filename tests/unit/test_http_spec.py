"""Reading the input of ``fanout http``: line forms, defaults, ${VAR}, every bad-input case."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest

from fanout.http._spec import (
    Context,
    InputError,
    InvalidLine,
    RequestSpec,
    SpecError,
    iter_specs,
    make_context,
    parse_header_option,
    parse_line,
    validate,
)

ENV = {"API_KEY": "sk-test-123456", "TEAM": "blue"}


def ctx(*headers: str, env: dict[str, str] | None = None) -> Context:
    return make_context("req.jsonl", list(headers), ENV if env is None else env)


def parse(line: str, lineno: int = 1, context: Context | None = None) -> RequestSpec:
    return parse_line(line.encode(), lineno, lineno - 1, context or ctx())


def error_of(line: str, context: Context | None = None) -> str:
    with pytest.raises(SpecError) as info:
        parse(line, context=context)
    return str(info.value)


def test_json_object_with_every_field() -> None:
    spec = parse('{"id": "q1", "method": "post", "url": "https://api.example/v1?x=1", '
                 '"headers": {"Accept": "application/json"}, "params": {"a": [1, "b"], '
                 '"flag": true}, "json": {"prompt": "hi"}}')
    assert spec.id == "q1"
    assert spec.method == "POST"
    assert spec.url == "https://api.example/v1?x=1"
    assert spec.headers == {"Accept": "application/json"}
    assert spec.params == [("a", 1), ("a", "b"), ("flag", "true")]
    assert spec.has_json and spec.json == {"prompt": "hi"}
    assert spec.data is None


def test_method_defaults_to_get_and_id_to_the_line_number() -> None:
    spec = parse('{"url": "http://h/x"}', lineno=7)
    assert (spec.method, spec.id, spec.line, spec.index) == ("GET", 7, 7, 6)


def test_json_null_body_is_still_a_json_body() -> None:
    spec = parse('{"url": "http://h/x", "method": "PUT", "json": null}')
    assert spec.has_json and spec.json is None


def test_bare_json_string_and_plain_url_are_gets() -> None:
    for line in ('"https://h/a?b=1"', "https://h/a?b=1", "  https://h/a?b=1  \n"):
        spec = parse(line, lineno=3)
        assert (spec.method, spec.url, spec.id) == ("GET", "https://h/a?b=1", 3)


def test_raw_data_and_form_data() -> None:
    assert parse('{"url": "http://h", "method": "POST", "data": "raw body"}').data == "raw body"
    form = parse('{"url": "http://h", "method": "POST", "data": {"a": 1, "b": "x"}}').data
    assert form == {"a": "1", "b": "x"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": 1, "url": "http://h"', "invalid JSON"),
        ("{not json}", "invalid JSON"),
        ('{"id": "a"}', '"url" is missing'),
        ('{"url": 5}', '"url" must be a string'),
        ('{"url": ""}', '"url" is empty'),
        ('{"url": "ftp://h/file"}', "http:// or https://"),
        ('"file:///etc/passwd"', "http:// or https://"),
        ("ftp://h/file", "http:// or https://"),
        ('{"url": "example.com/x"}', "no scheme"),
        ('{"url": "http://"}', "no host"),
        ('{"url": "http://h:99999/"}', "not a valid URL"),
        ('{"url": "http://h/a b"}', "whitespace"),
        ('{"url": "http://h", "method": "FETCH"}', "unknown method 'FETCH'"),
        ('{"url": "http://h", "method": 3}', "unknown method a number"),
        ('{"url": "http://h", "headres": {}}', 'unknown field "headres"'),
        ('{"url": "http://h", "headers": ["a"]}', '"headers" must be an object'),
        ('{"url": "http://h", "headers": {"Bad Name": "x"}}', "not a valid HTTP header name"),
        ('{"url": "http://h", "headers": {"X": {"a": 1}}}', 'header "X" must be a string'),
        ('{"url": "http://h", "headers": {"X": "a\\r\\nEvil: 1"}}', "line break"),
        ('{"url": "http://h", "params": [1]}', '"params" must be an object'),
        ('{"url": "http://h", "params": {"a": {"b": 1}}}', '"params"."a" must be'),
        ('{"url": "http://h", "json": {}, "data": "x"}', "either \"json\" or \"data\""),
        ('{"url": "http://h", "data": [1]}', '"data" must be a string'),
        ('{"url": "http://h", "id": 1.5}', '"id" must be a string or an integer'),
        ('{"url": "http://h", "id": true}', '"id" must be a string or an integer'),
        ("[1, 2]", "expected a JSON object, a JSON string or a URL (got a list)"),
        ("42", "expected a JSON object, a JSON string or a URL (got a number)"),
        ("hello world", "neither a JSON request nor an http(s) URL"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, expected: str) -> None:
    assert expected in error_of(line)


def test_invalid_utf8_is_reported() -> None:
    with pytest.raises(SpecError, match="UTF-8"):
        parse_line(b"http://h/\xff\xfe", 1, 0, ctx())


def test_env_var_fills_header_and_marks_it_secret() -> None:
    spec = parse('{"url": "http://h", "headers": {"X-Team": "${TEAM}-x", '
                 '"Authorization": "Bearer ${API_KEY}", "Accept": "a/b"}}')
    assert spec.headers["Authorization"] == "Bearer sk-test-123456"
    assert spec.headers["X-Team"] == "blue-x"
    assert spec.sensitive == frozenset({"authorization", "x-team"})
    assert "sk-test-123456" in spec.secrets
    assert "Bearer sk-test-123456" in spec.secrets


def test_missing_env_var_names_the_header_and_the_variable() -> None:
    message = error_of('{"url": "http://h", "headers": {"X-Key": "${NOPE_VAR}"}}')
    assert "NOPE_VAR" in message and "X-Key" in message and "not set" in message


def test_credential_like_header_names_are_secret_even_without_env() -> None:
    spec = parse('{"url": "http://h", "headers": {"X-API-Key": "literal-key-1", '
                 '"Cookie": "sid=abcdef", "X-Trace": "t1"}}')
    assert spec.sensitive == frozenset({"x-api-key", "cookie"})
    assert set(spec.secrets) >= {"literal-key-1", "sid=abcdef"}
    assert "t1" not in spec.secrets


def test_header_option_applies_to_every_request_and_the_line_wins() -> None:
    context = ctx("X-Api-Key: ${API_KEY}", "Accept: text/plain")
    plain = parse("http://h/a", context=context)
    assert plain.headers == {"X-Api-Key": "sk-test-123456", "Accept": "text/plain"}
    assert plain.sensitive == frozenset({"x-api-key"})
    assert "sk-test-123456" in plain.secrets
    spec = parse('{"url": "http://h", "headers": {"accept": "application/json"}}',
                 context=context)
    assert spec.headers == {"X-Api-Key": "sk-test-123456", "accept": "application/json"}


def test_header_option_errors() -> None:
    with pytest.raises(SpecError, match="Name: value"):
        parse_header_option("no colon here", ENV)
    with pytest.raises(SpecError, match="MISSING_ONE"):
        parse_header_option("X-Key: ${MISSING_ONE}", ENV)


def validate_text(text: str, *, skip_invalid: bool = False) -> Any:
    return validate(io.BytesIO(text.encode()), ctx(), skip_invalid=skip_invalid)


def test_validate_counts_requests_and_ignores_blank_lines() -> None:
    checked = validate_text('http://h/1\n\n   \n{"url": "http://h/2"}\n"http://h/3"')
    assert checked.count == 3
    assert checked.invalid == {}


def test_validate_stops_at_the_first_bad_line_with_file_and_line() -> None:
    with pytest.raises(InputError) as info:
        validate_text('http://h/1\n\n{"id": "x"}\n{"bad\n')
    assert str(info.value) == 'req.jsonl:3: "url" is missing'


def test_duplicate_ids_are_caught_including_default_line_ids() -> None:
    with pytest.raises(InputError, match=r"req.jsonl:3: duplicate id 'a' \(first on line 1\)"):
        validate_text('{"id": "a", "url": "http://h"}\nhttp://h\n{"id": "a", "url": "http://h"}')
    with pytest.raises(InputError, match=r"req.jsonl:2: duplicate id 1 \(first on line 1\)"):
        validate_text('http://h\n{"id": 1, "url": "http://h"}')


def test_skip_invalid_collects_bad_lines_and_feeds_them_as_invalid() -> None:
    text = 'http://h/1\n{"id": "k", "url": "ftp://x"}\nnot a url\n{"id": "z", "url": "http://h"}\n'
    checked = validate_text(text, skip_invalid=True)
    assert checked.count == 4
    assert sorted(checked.invalid) == [2, 3]
    items = list(iter_specs(io.BytesIO(text.encode()), ctx(), checked))
    assert [type(i) for i in items] == [RequestSpec, InvalidLine, InvalidLine, RequestSpec]
    assert [i.id for i in items] == [1, "k", 3, "z"]
    assert [i.index for i in items] == [0, 1, 2, 3]
    bad = items[1]
    assert isinstance(bad, InvalidLine)
    assert bad.message.startswith("req.jsonl:2: ")


def test_iter_specs_skips_done_ids_but_keeps_indexes() -> None:
    text = '{"id": "a", "url": "http://h"}\n{"id": "b", "url": "http://h"}\nhttp://h/c\n'
    checked = validate_text(text)
    items = list(iter_specs(io.BytesIO(text.encode()), ctx(), checked, {"a", 3}))
    assert [(i.id, i.index) for i in items] == [("b", 1)]


def test_small_inputs_are_kept_parsed_and_big_ones_streamed_the_same() -> None:
    from fanout.http._spec import cached_specs

    text = "".join(f'{{"id": "r{i}", "url": "http://h/{i}"}}\n' for i in range(50)) + "bad\n"
    small = validate(io.BytesIO(text.encode()), ctx(), skip_invalid=True)
    big = validate(io.BytesIO(text.encode()), ctx(), skip_invalid=True, cache_bytes=100)
    assert small.cached is not None and big.cached is None
    done = {"r3", "r7"}
    kept = list(cached_specs(small, done))
    streamed = list(iter_specs(io.BytesIO(text.encode()), ctx(), big, done))
    assert kept == streamed
    assert len(kept) == 49 and isinstance(kept[-1], InvalidLine)


@pytest.mark.parametrize("url", ["http://[::1]:8080/x?a=1#f", "https://user:pw@h.example/x",
                                 "HTTP://H/x", "http://h.example", "http://h:65535"])
def test_unusual_but_valid_urls_pass(url: str) -> None:
    assert parse(json.dumps({"url": url})).url == url


def test_env_vars_fill_the_url_and_params_and_become_secrets() -> None:
    spec = parse('{"url": "http://h/${TEAM}/x?key=${API_KEY}", '
                 '"params": {"k": "${API_KEY}", "n": 3, "t": ["${TEAM}", "b"]}}')
    assert spec.url == "http://h/blue/x?key=sk-test-123456"
    assert spec.params == [("k", "sk-test-123456"), ("n", 3), ("t", "blue"), ("t", "b")]
    assert set(spec.secrets) == {"sk-test-123456", "blue"}
    # a plain URL line and a JSON string line too
    assert parse("http://h/?k=${API_KEY}").url == "http://h/?k=sk-test-123456"
    assert parse('"http://h/?k=${API_KEY}"').secrets == ("sk-test-123456",)


def test_a_line_without_env_vars_shares_the_context_secrets() -> None:
    context = ctx("Authorization: Bearer ${API_KEY}")
    assert parse('{"url": "http://h/x", "params": {"a": "b"}}', context=context).secrets \
        is context.secrets


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"url": "http://h/${NOPE_VAR}"}', '"url" uses ${NOPE_VAR}, but environment variable'),
        ("http://h/${NOPE_VAR}", '"url" uses ${NOPE_VAR}'),
        ('{"url": "http://h", "params": {"q": "${NOPE_VAR}"}}', '"params"."q" uses ${NOPE_VAR}'),
    ],
)
def test_unset_env_vars_in_url_or_params_name_where(line: str, expected: str) -> None:
    assert expected in error_of(line)


def test_a_url_made_invalid_by_a_value_does_not_show_the_value() -> None:
    message = error_of('{"url": "http://h:${API_KEY}/x"}')
    assert "not a valid URL" in message and "sk-test-123456" not in message


def test_relative_urls_need_a_base_url() -> None:
    assert "or, with --base-url, a path" in error_of('{"url": "/v1/x"}')
    based = replace(ctx(), base_url="http://127.0.0.1:8000/")
    assert parse('{"url": "/v1/x?a=1"}', context=based).url == "http://127.0.0.1:8000/v1/x?a=1"
    assert parse("/todos/1", context=based).url == "http://127.0.0.1:8000/todos/1"
