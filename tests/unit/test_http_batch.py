"""OpenAI Batch files: telling the format, reading its lines, writing its output lines."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fanout import CallTimeout
from fanout._journal import CorruptJournal
from fanout._result import Result
from fanout.http._client import HTTPStatusError, InvalidInput, Response
from fanout.http._record import BatchRecordMaker, batch_failures
from fanout.http._spec import (
    Context,
    InputError,
    InvalidLine,
    RequestSpec,
    SpecError,
    check_base_url,
    detect_format,
    for_format,
    join_url,
    make_context,
    parse_line,
    validate,
)

KEY = "sk-openai-test-0123456789"
LINE = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "1+1?"}]}}


def batch_ctx(*headers: str, env: dict[str, str] | None = None, base: str | None = None,
              line: int | None = 1) -> Context:
    environ = {"OPENAI_API_KEY": KEY} if env is None else env
    return for_format(make_context("b.jsonl", list(headers), environ), "openai", line, base)


def parse(obj: Any, context: Context | None = None, lineno: int = 1) -> RequestSpec:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return parse_line(text.encode(), lineno, lineno - 1, context or batch_ctx())


def error_of(obj: Any, context: Context | None = None) -> str:
    with pytest.raises(SpecError) as info:
        parse(obj, context)
    return str(info.value)


# ------------------------------------------------------------------------- format
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps(LINE) + "\n", ("openai", 1)),
        ("\n  \n" + json.dumps(LINE) + "\n", ("openai", 3)),
        ("\ufeff" + json.dumps(LINE) + "\n", ("openai", 1)),
        ('{"id": 1, "url": "http://h"}\n' + json.dumps(LINE) + "\n", ("fanout", 1)),
        ("http://h/x\n", ("fanout", 1)),
        ('{"custom_id": \n', ("fanout", 1)),
        ("", ("fanout", None)),
    ],
)
def test_the_format_is_told_from_the_first_line_that_is_not_blank(
    text: str, expected: tuple[str, int | None]
) -> None:
    assert detect_format(io.BytesIO(text.encode())) == expected


def test_batch_lines_become_requests_on_the_base_url() -> None:
    spec = parse(LINE, batch_ctx(base="http://127.0.0.1:8000"))
    assert (spec.id, spec.method, spec.url) == ("r1", "POST", "http://127.0.0.1:8000/v1/chat/"
                                                               "completions")
    assert spec.has_json and spec.json == LINE["body"]
    assert spec.params is None and spec.data is None


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://h:8000", "/v1/chat/completions", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/v1", "/v1/chat/completions", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/v1/", "/v1/embeddings", "http://h:8000/v1/embeddings"),
        ("http://h:8000/", "/v1/x", "http://h:8000/v1/x"),
        ("http://h/openai", "/v1/x", "http://h/openai/v1/x"),
        ("http://h/v1", "/other", "http://h/v1/other"),
    ],
)
def test_base_urls_with_or_without_v1_join_the_same(base: str, path: str, url: str) -> None:
    assert join_url(base, path) == url


def test_base_url_defaults_to_openai_base_url_then_api_openai_com() -> None:
    assert batch_ctx(env={}).base_url == "https://api.openai.com"
    assert batch_ctx(env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}).base_url == \
        "http://127.0.0.1:9/v1"
    assert batch_ctx(env={"OPENAI_BASE_URL": "http://e:1"}, base="http://o:2").base_url == \
        "http://o:2"
    with pytest.raises(SpecError, match="OPENAI_BASE_URL must be an http:// or https://"):
        batch_ctx(env={"OPENAI_BASE_URL": "localhost:8000"})


def test_an_absolute_url_in_a_batch_line_is_kept() -> None:
    assert parse({**LINE, "url": "http://other:1/v1/x"}).url == "http://other:1/v1/x"


def test_openai_api_key_becomes_a_secret_bearer_header_unless_h_gives_one() -> None:
    ctx = batch_ctx()
    assert ctx.headers == {"Authorization": f"Bearer {KEY}"}
    assert "authorization" in ctx.sensitive and KEY in ctx.secrets
    assert parse(LINE, ctx).headers["Authorization"] == f"Bearer {KEY}"
    given = batch_ctx("authorization: Bearer other-key-1234")
    assert given.headers == {"authorization": "Bearer other-key-1234"}
    assert batch_ctx(env={}).headers == {}
    # fanout's own format never adds it
    assert for_format(make_context("f", [], {"OPENAI_API_KEY": KEY}), "fanout", 1,
                      None).headers == {}


def test_method_defaults_to_post_and_body_is_optional() -> None:
    spec = parse({"custom_id": "a", "url": "/v1/models", "method": "get"})
    assert (spec.method, spec.has_json) == ("GET", False)
    assert parse({"custom_id": "a", "url": "/v1/x"}).method == "POST"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"method": "POST", "url": "/v1/x"}, '"custom_id" is missing'),
        ({**LINE, "custom_id": 5}, '"custom_id" must be a non-empty string (got a number)'),
        ({**LINE, "custom_id": ""}, '"custom_id" must be a non-empty string'),
        ({"custom_id": "a", "method": "POST"}, '"url" is missing'),
        ({**LINE, "url": "v1/chat"}, "must be an http:// or https:// URL"),
        ({**LINE, "method": "FETCH"}, "unknown method 'FETCH'"),
        ({**LINE, "headers": {}}, 'unknown field "headers" in an OpenAI Batch line '
                                  "(expected: custom_id, method, url, body); line 1 is an "
                                  "OpenAI Batch line; use one format per file"),
        ({**LINE, "bdy": {}}, 'unknown field "bdy" in an OpenAI Batch line'),
        ('"http://h/x"', "expected an OpenAI Batch line"),
        ("http://h/x", "not a bare URL (line 1 is an OpenAI Batch line"),
    ],
)
def test_bad_batch_lines_say_what_is_wrong(obj: Any, expected: str) -> None:
    assert expected in error_of(obj)


def test_a_batch_line_in_a_fanout_file_is_a_mixed_format_error() -> None:
    fanout_ctx = for_format(make_context("f", [], {}), "fanout", 1, None)
    assert error_of(LINE, fanout_ctx) == (
        '"custom_id" is a field of the OpenAI Batch format, but line 1 is in fanout\'s '
        "format; use one format per file")
    forced = for_format(make_context("f", [], {}), "fanout", None, None)
    assert "but --format fanout was given" in error_of(LINE, forced)
    assert "--format openai was given" in error_of("http://h/x", batch_ctx(line=None))


def test_validate_names_duplicate_custom_ids_with_file_and_line() -> None:
    text = "\n".join(json.dumps({**LINE, "custom_id": c}) for c in ("a", "b", "a"))
    with pytest.raises(InputError, match=r"^b\.jsonl:3: duplicate custom_id 'a' "
                                         r"\(first on line 1\)$"):
        validate(io.BytesIO(text.encode()), batch_ctx(), skip_invalid=False)


def test_skip_invalid_keeps_the_custom_id_of_a_bad_line() -> None:
    text = json.dumps(LINE) + "\n" + json.dumps({"custom_id": "bad", "url": 3}) + "\n"
    checked = validate(io.BytesIO(text.encode()), batch_ctx(), skip_invalid=True)
    assert checked.invalid_ids == {2: "bad"}
    assert checked.cached is not None and isinstance(checked.cached[1], InvalidLine)


# ------------------------------------------------------------------------- output
def spec(**kw: Any) -> RequestSpec:
    base: dict[str, Any] = {"id": "r1", "index": 0, "line": 1, "method": "POST",
                            "url": "http://h/v1/chat/completions", "headers": {}}
    base.update(kw)
    return RequestSpec(**base)


def line_of(result: Result[Any]) -> dict[str, Any]:
    data = BatchRecordMaker().line(result)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    rec: dict[str, Any] = json.loads(data)
    assert list(rec) == ["id", "custom_id", "response", "error"]
    assert re.fullmatch(r"batch_req_[0-9a-f]{32}", rec["id"])
    return rec


def answer(status: int = 200, body: bytes = b'{"object": "chat.completion"}',
           request_id: str | None = "req_abc", truncated: bool = False) -> Response:
    return Response(status, "", None, body, truncated, request_id)


def test_an_answer_is_a_response_with_status_request_id_and_json_body() -> None:
    rec = line_of(Result(0, spec(), answer(), None, 1, 0.01))
    assert rec["custom_id"] == "r1" and rec["error"] is None
    assert rec["response"] == {"status_code": 200, "request_id": "req_abc",
                               "body": {"object": "chat.completion"}}
    assert list(rec["response"]) == ["status_code", "request_id", "body"]


def test_a_failed_status_is_still_a_response_and_no_error() -> None:
    body = b'{"error": {"message": "bad", "type": "invalid_request_error"}}'
    error = HTTPStatusError(answer(400, body, None), False, None)
    rec = line_of(Result(0, spec(), None, error, 1, 0.01))
    assert rec["response"] == {"status_code": 400, "request_id": None,
                               "body": json.loads(body)}
    assert rec["error"] is None


def test_no_answer_is_an_error_with_code_and_message() -> None:
    rec = line_of(Result(0, spec(), None, CallTimeout(2.0), 3, 6.0))
    assert rec["response"] is None
    assert rec["error"]["code"] == "CallTimeout" and "2" in rec["error"]["message"]
    invalid = InvalidLine("x", 1, 2, "b.jsonl:2: \"url\" is missing")
    rec = line_of(Result(1, invalid, None, InvalidInput(invalid.message), 0, 0.0))
    assert rec["custom_id"] == "x"
    assert rec["error"] == {"code": "InvalidInput", "message": 'b.jsonl:2: "url" is missing'}


@pytest.mark.parametrize(
    ("body", "truncated", "expected"),
    [(b"<html>oops</html>", False, "<html>oops</html>"), (b"", False, None),
     (b'{"a": [1, 2', True, '{"a": [1, 2'), (b'{"a":\n 1}\n', False, {"a": 1})],
)
def test_bodies_that_are_not_whole_json(body: bytes, truncated: bool, expected: Any) -> None:
    rec = line_of(Result(0, spec(), answer(body=body, truncated=truncated), None, 1, 0.0))
    assert rec["response"]["body"] == expected


def test_the_spliced_line_and_the_general_one_agree() -> None:
    maker = BatchRecordMaker()
    result = Result(0, spec(id="q\u2028"), answer(body='{"t": "a\u2028b"}'.encode()), None,
                    1, 0.0)
    fast = json.loads(maker.line(result))
    slow = maker.record(result)
    assert {**fast, "id": ""} == {**slow, "id": ""}
    assert "\u2028" not in maker.line(result).decode()


def test_secrets_are_scrubbed_from_a_batch_line() -> None:
    body = json.dumps({"headers": {"Authorization": f"Bearer {KEY}"}}).encode()
    rec = line_of(Result(0, spec(secrets=(KEY, f"Bearer {KEY}")), answer(body=body), None, 1,
                         0.0))
    assert rec["response"]["body"] == {"headers": {"Authorization": "[redacted]"}}
    error = ConnectionError(f"refused for {KEY}")
    rec = line_of(Result(0, spec(secrets=(KEY,)), None, error, 1, 0.0))
    assert KEY not in json.dumps(rec)


def test_batch_failures_reads_which_custom_ids_did_not_succeed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    lines = [
        {"id": "b1", "custom_id": "ok", "response": {"status_code": 200, "body": {}},
         "error": None},
        {"id": "b2", "custom_id": "http", "response": {"status_code": 500, "body": {}},
         "error": None},
        {"id": "b3", "custom_id": "none", "response": None,
         "error": {"code": "CallTimeout", "message": "..."}},
        {"id": "b4", "custom_id": "later", "response": None, "error": {}},
        {"id": "b5", "custom_id": "later", "response": {"status_code": 201, "body": {}},
         "error": None},
    ]
    out.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"id": "torn", "cus')
    assert batch_failures(str(out)) == {"http", "none"}
    assert batch_failures(str(tmp_path / "missing.jsonl")) == set()
    out.write_text('{"id": 1, "index": 0, "ok": true}\n')
    with pytest.raises(CorruptJournal, match="line 1 is not an OpenAI Batch output line"):
        batch_failures(str(out))


@pytest.mark.parametrize(
    ("url", "expected"),
    [("/v1", "--base-url must be an http:// or https:// URL (it has no scheme) (got '/v1')"),
     ("http://h/v1?x=1", "--base-url must not have a query or fragment"),
     ("http://", "--base-url has no host")],
)
def test_bad_base_urls(url: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        check_base_url(url, "--base-url")
    assert str(info.value).startswith(expected)
