"""What ``fanout chat`` keeps of an answer: the text, why it ended and the usage, for OpenAI
and Anthropic; an answer that is not one; the API's error message; the output record with
the key scrubbed; the tokens per minute of the progress display."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanout._result import Result
from fanout.http._chat import (
    ANTHROPIC,
    OPENAI,
    Answer,
    ChatClient,
    ChatReply,
    ChatRequest,
    InvalidAnswer,
    TokenRate,
    api_error,
    read_answer,
)
from fanout.http._chat_record import ChatRecordMaker
from fanout.http._client import HttpClient, HTTPStatusError, Response

KEY = "sk-record-0123456789"


def response(body: Any, status: int = 200) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, "", None, raw, False)


def test_an_openai_answer_is_the_first_choices_message() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
             "prompt_tokens_details": {"cached_tokens": 0}}
    answer = read_answer(OPENAI, response({"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "41"}, "finish_reason": "stop"},
    ], "usage": usage}))
    assert answer == Answer("42", "stop", usage)
    refusal = read_answer(OPENAI, response({"choices": [
        {"message": {"role": "assistant", "content": None, "refusal": "No."},
         "finish_reason": "content_filter"}]}))
    assert refusal == Answer(None, "content_filter", None)


def test_an_anthropic_answer_joins_its_text_blocks() -> None:
    usage = {"input_tokens": 12, "output_tokens": 5}
    answer = read_answer(ANTHROPIC, response({"content": [
        {"type": "text", "text": "4"}, {"type": "tool_use", "id": "t", "input": {}},
        {"type": "text", "text": "2"}], "stop_reason": "end_turn", "usage": usage}))
    assert answer == Answer("42", "end_turn", usage)
    assert read_answer(ANTHROPIC, response({"content": [], "stop_reason": "max_tokens"})) == \
        Answer(None, "max_tokens", None)


@pytest.mark.parametrize(("api", "body", "says"), [
    (OPENAI, b"<html>ok</html>", "not a chat completion"),
    (OPENAI, {"choices": []}, "not a chat completion"),
    (OPENAI, {"data": [1, 2]}, "is --base-url an OpenAI-compatible API?"),
    (ANTHROPIC, {"choices": [{"message": {"content": "x"}}]}, "not an Anthropic message"),
])
def test_a_success_that_is_no_answer_is_an_error_that_is_not_retried(
    api: Any, body: Any, says: str
) -> None:
    with pytest.raises(InvalidAnswer) as info:
        read_answer(api, response(body))
    assert says in str(info.value)
    assert info.value.retryable is False and info.value.response.status == 200


def test_the_apis_error_message_is_read_from_either_shape() -> None:
    assert api_error(response({"error": {"message": "Rate limit reached", "type": "requests"}},
                              429)) == "Rate limit reached"
    assert api_error(response({"type": "error", "error": {"type": "overloaded_error",
                                                          "message": "Overloaded"}}, 529)) == \
        "Overloaded"
    assert api_error(response(b"Bad Gateway", 502)) is None


def request(key: str | int = "q1") -> ChatRequest:
    return ChatRequest(key, 0, 1, "POST", "http://127.0.0.1:9/v1/chat/completions",
                       {"Authorization": f"Bearer {KEY}"}, json={"model": "m"}, has_json=True,
                       sensitive=frozenset({"authorization"}), secrets=(KEY, f"Bearer {KEY}"),
                       prompt="What is 6*7?")


def test_a_record_holds_the_answer_or_the_error_and_never_the_key() -> None:
    maker = ChatRecordMaker()
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    reply = ChatReply(response({"usage": usage}), Answer("42", "stop", usage))
    line = maker.line(Result(0, request(), reply, None, 2, 0.0123))
    assert json.loads(line) == {
        "id": "q1", "prompt": "What is 6*7?", "answer": "42", "finish_reason": "stop",
        "usage": usage, "ok": True, "error": None, "status": 200, "attempts": 2,
        "elapsed_ms": 12.3}
    refused = HTTPStatusError(response({"error": {"message": f"bad key {KEY}"}}, 401),
                              retryable=False, retry_after=None)
    refused.add_note(f"Incorrect API key provided: {KEY}")
    line = maker.line(Result(0, request(7), None, refused, 1, 0.001))
    record = json.loads(line)
    assert KEY.encode() not in line
    assert record["id"] == 7 and record["ok"] is False and record["status"] == 401
    assert record["answer"] is None and record["usage"] is None
    assert record["error"] == {"type": "HTTPStatusError", "message": "HTTP 401 Unauthorized; "
                               "Incorrect API key provided: [redacted]"}
    no_answer = maker.line(Result(0, request(), None, ConnectionResetError("reset"), 6, 0.0))
    assert json.loads(no_answer)["status"] is None


def test_tokens_per_minute_for_the_progress_display() -> None:
    now = [100.0]
    client = ChatClient(HttpClient(concurrency=1), OPENAI)
    rate = TokenRate(client, clock=lambda: now[0])
    assert rate() == ""  # nothing answered yet
    client.tokens, client.reserved = 2500, 30000
    now[0] = 110.0
    assert rate() == "15,000 tokens/min (180,000 reserved)"
