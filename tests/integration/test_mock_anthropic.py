"""The mock's Anthropic Messages API (``POST /v1/messages``) on a real server: answers,
usage, its headers and error shapes, driven with requests and the official ``anthropic`` SDK."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
import requests

from fanout.http._tokens import estimate_tokens, prompt_tokens, text_tokens
from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]
KEY = "sk-ant-mock-key"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def message_body(question: str = "What is 2*3+4=___ ?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "mock-claude-1",
        "max_tokens": 64,
        "system": "You answer sums.",
        "messages": [{"role": "user", "content": question}],
        **extra,
    }


def post(url: str, body: Any, headers: dict[str, str] = HEADERS) -> requests.Response:
    return requests.post(f"{url}/v1/messages", json=body, headers=headers, timeout=10)


def test_a_message_is_answered_with_anthropics_shape_and_usage(mock_server: MockServer) -> None:
    body = message_body()
    response = post(mock_server.url, body)
    assert response.status_code == 200
    answer = response.json()
    assert answer == {
        "id": answer["id"],
        "type": "message",
        "role": "assistant",
        "model": "mock-claude-1",
        "content": [{"type": "text", "text": "10"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens(body, "anthropic"), "output_tokens": 1},
    }
    assert answer["id"].startswith("msg_")
    assert answer["usage"]["input_tokens"] == 9  # "You answer sums." + the question: 35 chars
    assert response.headers["request-id"].startswith("req_")


def test_a_message_is_cut_at_max_tokens(mock_server: MockServer) -> None:
    answer = post(mock_server.url, message_body("Hello", max_tokens=3)).json()
    assert answer["stop_reason"] == "max_tokens"
    assert answer["usage"]["output_tokens"] == text_tokens(answer["content"][0]["text"]) == 3


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "sk-wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": KEY}, 400, "invalid_request_error"),
    ],
)
def test_key_and_version_headers_are_required(
    make_mock_server: MakeServer, headers: dict[str, str], status: int, kind: str
) -> None:
    server = make_mock_server(api_key=KEY)
    response = post(server.url, message_body(), headers)
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == kind
    assert error["error"]["message"]
    assert "sk-wrong" not in response.text and KEY not in response.text


def test_without_a_server_key_any_key_is_accepted_but_one_is_required(
    mock_server: MockServer,
) -> None:
    anyone = {"x-api-key": "anything", "anthropic-version": "2023-06-01"}
    assert post(mock_server.url, message_body(), anyone).status_code == 200
    nobody = post(mock_server.url, message_body(), {"anthropic-version": "2023-06-01"})
    assert nobody.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"model": "c", "messages": [{"role": "user", "content": "1+1"}]},  # no max_tokens
        {"model": "c", "max_tokens": 5, "messages": []},
        {"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "1+1"}]},
        {"model": "c", "max_tokens": 5, "messages": [{"role": "user"}]},
        message_body(system=3),
        message_body(stream=True),
        [1, 2],
    ],
)
def test_a_bad_message_request_is_an_anthropic_invalid_request_error(
    mock_server: MockServer, body: Any
) -> None:
    response = post(mock_server.url, body)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_rate_limits_are_announced_with_anthropic_headers_and_a_429_rate_limit_error(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rpm=2, tpm=1000)
    body = message_body()
    before = time.time()
    answers = [post(server.url, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    first = answers[0].headers
    assert first["anthropic-ratelimit-requests-limit"] == "2"
    assert first["anthropic-ratelimit-requests-remaining"] == "1"
    assert first["anthropic-ratelimit-tokens-limit"] == "1000"
    assert int(first["anthropic-ratelimit-tokens-remaining"]) == 1000 - estimate_tokens(
        body, "anthropic"
    )
    reset = datetime.datetime.strptime(
        first["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=datetime.UTC)
    # one request comes back in 30 s: the bucket is full then
    assert before + 29 <= reset.timestamp() <= time.time() + 31
    assert not [name for name in first if name.startswith("x-ratelimit")]
    limited = answers[2]
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert server.stats()["rate_limited_by"]["requests"] == 1


def test_the_unavailable_share_is_a_529_overloaded_error_here(make_mock_server: MakeServer) -> None:
    server = make_mock_server(unavailable_rate=1.0)
    response = post(server.url, message_body())
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    # elsewhere it stays a 503
    assert requests.get(f"{server.url}/todos/1", timeout=10).status_code == 503


def test_the_anthropic_sdk_sends_messages_and_reads_headers_and_errors(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(api_key=KEY, rpm=3, tpm=10_000)
    with anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0) as sdk:
        raw = sdk.messages.with_raw_response.create(
            model="mock-claude-1",
            max_tokens=32,
            system="You answer sums.",
            messages=[{"role": "user", "content": "What is 12+30=___ ?"}],
        )
        message = raw.parse()
        assert message.content[0].type == "text"
        assert message.content[0].text == "42"
        assert message.stop_reason == "end_turn"
        assert message.usage.output_tokens == 1
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == "2"
        sdk.messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "1+1"}]
        )
        sdk.messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "1+1"}]
        )
        with pytest.raises(anthropic.RateLimitError) as limited:
            sdk.messages.create(
                model="m", max_tokens=8, messages=[{"role": "user", "content": "1+1"}]
            )
    assert int(limited.value.response.headers["retry-after"]) >= 1
    with (
        anthropic.Anthropic(base_url=server.url, api_key="sk-wrong", max_retries=0) as wrong,
        pytest.raises(anthropic.AuthenticationError),
    ):
        wrong.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    overloaded = make_mock_server(unavailable_rate=1.0)
    with (
        anthropic.Anthropic(base_url=overloaded.url, api_key=KEY, max_retries=0) as sdk,
        pytest.raises(anthropic.OverloadedError),
    ):
        sdk.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])
