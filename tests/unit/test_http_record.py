"""Records, redaction, Retry-After parsing and the summary of ``fanout http``."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest

from fanout import CallTimeout
from fanout._result import Result
from fanout._retry import RetryPolicy
from fanout.http._client import (
    HTTPStatusError,
    InvalidInput,
    Response,
    is_retryable,
    parse_retry_after,
)
from fanout.http._record import RecordMaker
from fanout.http._redact import REDACTED, Scrubber, is_sensitive, redact_headers
from fanout.http._spec import InvalidLine, RequestSpec
from fanout.http._summary import LatencyHistogram, Summary

SECRET = "sk-live-abcdef123456"


def spec(**kw: Any) -> RequestSpec:
    base: dict[str, Any] = {"id": "q1", "index": 4, "line": 5, "method": "GET",
                            "url": "http://h/x", "headers": {}}
    base.update(kw)
    return RequestSpec(**base)


def response(status: int = 200, body: bytes = b'{"a": 1}', headers: Any = None,
             truncated: bool = False) -> Response:
    return Response(status, "OK" if status == 200 else "Nope", headers, body, truncated)


def line_of(result: Result[Any], include_headers: bool = False) -> dict[str, Any]:
    maker = RecordMaker(include_headers=include_headers)
    data = maker.line(result)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    decoded: dict[str, Any] = json.loads(data)
    # the spliced fast path and the general one write the same record
    assert decoded == maker.record(result) or result.item.secrets
    return decoded


def test_success_record_has_every_field_in_order() -> None:
    rec = line_of(Result(4, spec(), response(), None, 1, 0.0123456))
    assert list(rec) == ["id", "index", "ok", "status", "json", "error", "attempts",
                         "elapsed_ms"]
    assert rec == {"id": "q1", "index": 4, "ok": True, "status": 200, "json": {"a": 1},
                   "error": None, "attempts": 1, "elapsed_ms": 12.346}


def test_non_json_body_is_text_and_empty_body_is_empty_text() -> None:
    assert line_of(Result(0, spec(), response(body=b"<html>hi")))["text"] == "<html>hi"
    assert line_of(Result(0, spec(), response(body=b"")))["text"] == ""
    assert line_of(Result(0, spec(), response(body=b"\xff\xfeok")))["text"] == "\ufffd\ufffdok"


def test_truncated_body_is_text_and_flagged() -> None:
    rec = line_of(Result(0, spec(), response(body=b'{"a": [1, 2', truncated=True)))
    assert rec["text"] == '{"a": [1, 2' and rec["truncated"] is True


def test_status_failure_keeps_status_and_body() -> None:
    error = HTTPStatusError(response(404, b'{"error": "no"}'), False, None)
    rec = line_of(Result(0, spec(), None, error, 1, 0.001))
    assert rec["ok"] is False and rec["status"] == 404 and rec["json"] == {"error": "no"}
    assert rec["error"] == {"type": "HTTPStatusError", "message": "HTTP 404 Nope"}


def test_retry_after_beyond_the_cap_explains_itself() -> None:
    error = HTTPStatusError(response(429, b"{}"), True, 300.0)
    delay, final = RetryPolicy(retries=3, max_retry_after=120).decide(error, 1)
    assert delay is None
    rec = line_of(Result(0, spec(), None, final, 1, 0.001))
    assert "300s" in rec["error"]["message"] and "max_retry_after" in rec["error"]["message"]


def test_no_response_means_null_status_and_no_body() -> None:
    rec = line_of(Result(0, spec(), None, CallTimeout(2.0), 3, 2.0))
    assert rec["status"] is None and "json" not in rec and "text" not in rec
    assert rec["error"]["type"] == "CallTimeout" and rec["attempts"] == 3


def test_invalid_line_record() -> None:
    bad = InvalidLine(7, 6, 7, 'req.jsonl:7: "url" is missing')
    rec = line_of(Result(6, bad, None, InvalidInput(bad.message), 1, 0.0))
    assert rec["id"] == 7 and rec["index"] == 6 and rec["attempts"] == 0
    assert rec["error"] == {"type": "InvalidInput", "message": 'req.jsonl:7: "url" is missing'}


def test_secrets_are_scrubbed_from_echoed_bodies_and_errors() -> None:
    secret_spec = spec(secrets=(SECRET, f"Bearer {SECRET}"))
    body = json.dumps({"headers": {"Authorization": f"Bearer {SECRET}"}, "n": 1}).encode()
    rec = line_of(Result(0, secret_spec, response(body=body)))
    assert SECRET not in json.dumps(rec)
    assert rec["json"] == {"headers": {"Authorization": REDACTED}, "n": 1}
    error = HTTPStatusError(response(400, f"bad key {SECRET}".encode()), False, None)
    rec = line_of(Result(0, secret_spec, None, error))
    assert rec["text"] == f"bad key {REDACTED}"


def test_secret_with_characters_json_escapes_is_still_found() -> None:
    tricky = 'p"ss\\word/é'
    body = json.dumps({"echo": tricky}).encode()
    rec = line_of(Result(0, spec(secrets=(tricky,)), response(body=body)))
    assert rec["json"] == {"echo": REDACTED}


def test_included_headers_redact_credential_headers() -> None:
    headers = [("Content-Type", "application/json"), ("Set-Cookie", "sid=1"),
               ("Set-Cookie", "x=2"), ("X-Token", "abc"), ("X-Echo", SECRET)]
    rec = line_of(Result(0, spec(secrets=(SECRET,)), response(headers=headers)),
                  include_headers=True)
    assert rec["headers"] == {"Content-Type": "application/json",
                              "Set-Cookie": f"{REDACTED}, {REDACTED}",
                              "X-Token": REDACTED, "X-Echo": REDACTED}


@pytest.mark.parametrize("name", ["Authorization", "proxy-authorization", "Cookie", "Set-Cookie",
                                  "X-API-Key", "api_key", "X-Auth-Token", "X-Client-Secret",
                                  "X-Session-Id", "X-Password"])
def test_credential_like_names_are_sensitive(name: str) -> None:
    assert is_sensitive(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "Keep-Alive", "X-Request-Id",
                                  "User-Agent"])
def test_ordinary_names_are_not_sensitive(name: str) -> None:
    assert not is_sensitive(name)


def test_scrubber_ignores_tiny_values_and_prefers_the_longest() -> None:
    scrubber = Scrubber(["abc", "token-1234", "token-1234-long"])
    assert scrubber.text("abc token-1234-long token-1234") == f"abc {REDACTED} {REDACTED}"
    assert redact_headers([("A", "token-1234")], scrubber) == {"A": REDACTED}


def test_retry_after_both_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("0.5", now) == 0.5
    assert parse_retry_after("-3", now) == 0.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    for junk in (None, "", "soon", "nan", "Wed, 99 Foo 2024"):
        assert parse_retry_after(junk, now) is None


def test_which_errors_are_retried() -> None:
    import aiohttp

    assert is_retryable(aiohttp.ServerDisconnectedError())
    assert is_retryable(ConnectionResetError())
    assert is_retryable(TimeoutError())
    assert not is_retryable(ValueError("bug"))
    assert not is_retryable(aiohttp.InvalidURL("x"))


def test_histogram_percentiles_within_one_percent() -> None:
    hist = LatencyHistogram()
    for ms in range(1, 1001):
        hist.add(float(ms))
    for q, exact in ((0.5, 500), (0.9, 900), (0.99, 990)):
        value = hist.percentile(q)
        assert value is not None and abs(value - exact) / exact < 0.011
    assert hist.max == 1000.0
    assert LatencyHistogram().percentile(0.5) is None


def test_summary_counts() -> None:
    summary = Summary(requests=5, skipped=1)
    summary.add(Result(0, spec(), response(), None, 1, 0.010))
    summary.add(Result(1, spec(), response(), None, 3, 0.020))
    summary.add(Result(2, spec(), None, HTTPStatusError(response(503), True, None), 4, 0.005))
    bad = InvalidLine(4, 3, 4, "x")
    summary.add(Result(3, bad, None, InvalidInput("x"), 1, 0.0))
    doc = summary.as_dict(2.0, exit_code=1, interrupted=None)
    assert doc["done"] == 4 and doc["ok"] == 2 and doc["failures"] == 2 and doc["invalid"] == 1
    assert doc["retries"] == 5 and doc["skipped"] == 1
    assert doc["by_status"] == {"200": 2, "503": 1}
    assert doc["errors"] == {"HTTPStatusError": 1, "InvalidInput": 1}
    assert doc["throughput"] == 2.0 and doc["wall_time"] == 2.0
    assert set(doc["latency_ms"]) == {"p50", "p90", "p99", "max"}
    text = summary.render(2.0)
    assert "4 requests" in text and "200: 2" in text and "p99" in text


def test_spliced_json_bodies_stay_one_line_and_valid() -> None:
    body = '{\r\n  "a": "x\u2028y",\n  "b": [1, 2]\n}'.encode()
    data = RecordMaker(include_headers=False).line(Result(0, spec(id=7), response(body=body)))
    assert data.count(b"\n") == 1 and len(data.decode().splitlines()) == 1
    assert json.loads(data)["json"] == {"a": "x\u2028y", "b": [1, 2]}
    assert json.loads(data)["id"] == 7


def test_a_body_with_extra_data_after_the_json_is_text() -> None:
    rec = line_of(Result(0, spec(), response(body=b'{"a": 1} trailing')))
    assert rec["text"] == '{"a": 1} trailing'
    rec = line_of(Result(0, spec(), response(body=b'{"a": 1}\n')))
    assert rec["json"] == {"a": 1}
