"""The mock's OpenAI-compatible API on a real server: completions, embeddings, models, error
shapes, API keys, and the official ``openai`` SDK (sync and async) as its client."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from collections.abc import Callable
from typing import Any

import openai
import pytest
import requests

from fanout.http._tokens import prompt_tokens, text_tokens
from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]
KEY = "sk-mock-test-key"


def post(url: str, path: str, body: Any, **headers: str) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, headers=headers, timeout=10)


# --- /v1/chat/completions: n, maximum, usage --------------------------------------------


def test_chat_gives_n_choices_cut_to_max_tokens_and_counts_usage_like_the_estimator(
    mock_server: MockServer,
) -> None:
    body = {
        "model": "mock-1",
        "messages": [
            {"role": "system", "content": "You answer sums."},
            {"role": "user", "content": "Hello there"},
        ],
        "n": 3,
        "max_completion_tokens": 4,
    }
    answer = post(mock_server.url, "/v1/chat/completions", body).json()
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
    content = answer["choices"][0]["message"]["content"]
    assert len(content) == 16  # 4 tokens of 4 characters
    assert {c["finish_reason"] for c in answer["choices"]} == {"length"}
    assert answer["usage"] == {
        "prompt_tokens": prompt_tokens(body),
        "completion_tokens": 3 * text_tokens(content),
        "total_tokens": prompt_tokens(body) + 3 * text_tokens(content),
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"n": 0}, "n"), ({"n": 500}, "n"), ({"max_tokens": -1}, "max_tokens")],
)
def test_chat_rejects_a_bad_n_or_maximum(
    mock_server: MockServer, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "1+1"}], **extra}
    response = post(mock_server.url, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


# --- /v1/completions --------------------------------------------------------------------


def test_completions_answer_each_prompt_n_times_and_default_to_16_tokens(
    mock_server: MockServer,
) -> None:
    body = {"model": "mock-1", "prompt": ["What is 2+2?", "Tell me a story"], "n": 2}
    response = post(mock_server.url, "/v1/completions", body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["object"] == "text_completion"
    assert answer["id"].startswith("cmpl-")
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2, 3]
    assert [c["text"] for c in answer["choices"][:2]] == ["4", "4"]
    story = answer["choices"][2]
    assert story["finish_reason"] == "length" and len(story["text"]) == 64  # 16 tokens
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["logprobs"] is None
    completion = sum(text_tokens(c["text"]) for c in answer["choices"])
    assert answer["usage"] == {
        "prompt_tokens": prompt_tokens(body),
        "completion_tokens": completion,
        "total_tokens": prompt_tokens(body) + completion,
    }


def test_completions_take_a_single_prompt_string(mock_server: MockServer) -> None:
    answer = post(mock_server.url, "/v1/completions", {"model": "m", "prompt": "3*3="}).json()
    (choice,) = answer["choices"]
    assert choice == {"text": "9", "index": 0, "logprobs": None, "finish_reason": "stop"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "1+1"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": {"a": 1}}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": "1+1", "stream": True}, "stream"),
    ],
)
def test_completions_reject_a_bad_request(
    mock_server: MockServer, body: dict[str, Any], param: str
) -> None:
    response = post(mock_server.url, "/v1/completions", body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


# --- /v1/embeddings ---------------------------------------------------------------------


def test_embeddings_are_deterministic_unit_vectors_with_usage(mock_server: MockServer) -> None:
    body = {"model": "mock-embed-1", "input": ["first text", "second text"], "dimensions": 8}
    answer = post(mock_server.url, "/v1/embeddings", body).json()
    assert answer["object"] == "list" and answer["model"] == "mock-embed-1"
    assert [d["index"] for d in answer["data"]] == [0, 1]
    first, second = (d["embedding"] for d in answer["data"])
    assert len(first) == 8
    assert math.isclose(math.fsum(v * v for v in first), 1.0, rel_tol=1e-9)
    assert first != second
    assert answer["usage"] == {"prompt_tokens": prompt_tokens(body), "total_tokens": 6}
    again = post(mock_server.url, "/v1/embeddings", {**body, "input": "first text"}).json()
    assert again["data"][0]["embedding"] == first


def test_embeddings_in_base64_are_the_same_vectors_as_float32(mock_server: MockServer) -> None:
    body = {"model": "e", "input": "some text"}
    floats = post(mock_server.url, "/v1/embeddings", body).json()["data"][0]["embedding"]
    encoded = post(mock_server.url, "/v1/embeddings", {**body, "encoding_format": "base64"})
    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(decoded) == len(floats) == 64
    assert decoded == pytest.approx(floats, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "e"}, "input"),
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": [1.5]}, "input"),
        ({"model": "e", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "e", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_embeddings_reject_a_bad_request(
    mock_server: MockServer, body: dict[str, Any], param: str
) -> None:
    response = post(mock_server.url, "/v1/embeddings", body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


# --- /v1/models, unknown paths, request ids ---------------------------------------------


def test_models_list_and_retrieve_and_an_unknown_model_is_a_404(mock_server: MockServer) -> None:
    listing = requests.get(f"{mock_server.url}/v1/models", timeout=10).json()
    assert listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert "mock-1" in ids
    one = requests.get(f"{mock_server.url}/v1/models/mock-1", timeout=10).json()
    assert one == listing["data"][ids.index("mock-1")]
    assert set(one) == {"id", "object", "created", "owned_by"}
    missing = requests.get(f"{mock_server.url}/v1/models/gpt-nope", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert missing.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/nope"), ("GET", "/v1/completions")])
def test_an_unknown_v1_path_or_method_is_openais_invalid_url_404(
    mock_server: MockServer, method: str, path: str
) -> None:
    response = requests.request(method, f"{mock_server.url}{path}", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Invalid URL ({method} {path})"
    assert response.headers["x-request-id"].startswith("req_")


def test_every_v1_answer_has_its_own_request_id(mock_server: MockServer) -> None:
    answers = [
        post(mock_server.url, "/v1/chat/completions", {"model": "m"}),
        post(mock_server.url, "/v1/embeddings", {"model": "e", "input": "x"}),
        requests.get(f"{mock_server.url}/v1/models", timeout=10),
    ]
    ids = [a.headers["x-request-id"] for a in answers]
    assert len(set(ids)) == 3


# --- API keys ---------------------------------------------------------------------------


def test_a_server_api_key_refuses_a_missing_or_wrong_bearer_with_a_401(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(api_key=KEY)
    body = {"model": "m", "messages": [{"role": "user", "content": "1+1"}]}
    missing = post(server.url, "/v1/chat/completions", body)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "Authorization" in missing.json()["error"]["message"]
    wrong = post(server.url, "/v1/chat/completions", body, Authorization="Bearer sk-wrong")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong" not in wrong.text and KEY not in wrong.text
    right = post(server.url, "/v1/chat/completions", body, Authorization=f"Bearer {KEY}")
    assert right.status_code == 200
    # only the API needs the key
    assert requests.get(f"{server.url}/todos/1", timeout=10).status_code == 200
    seen = server.stats()
    assert seen["config"]["api_key_set"] is True
    assert KEY not in str(seen)


# --- the official openai SDK ------------------------------------------------------------


@pytest.fixture
def keyed_server(make_mock_server: MakeServer) -> MockServer:
    return make_mock_server(api_key=KEY, rpm=1000, tpm=100_000)


def client(server: MockServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_the_openai_sdk_chats_completes_embeds_and_lists_models(keyed_server: MockServer) -> None:
    with client(keyed_server) as sdk:
        chat = sdk.chat.completions.create(
            model="mock-1", messages=[{"role": "user", "content": "What is 6*7=___ ?"}]
        )
        assert chat.choices[0].message.content == "42"
        assert chat.usage is not None and chat.usage.prompt_tokens == 5
        completion = sdk.completions.create(model="mock-1", prompt="10-3=", max_tokens=5)
        assert completion.choices[0].text == "7"
        # the SDK asks for base64 and decodes it
        embedded = sdk.embeddings.create(model="mock-embed-1", input=["a", "b", "c"])
        assert [len(d.embedding) for d in embedded.data] == [64, 64, 64]
        assert embedded.usage.prompt_tokens == 1
        sized = sdk.embeddings.create(model="mock-embed-1", input="a", dimensions=16)
        assert len(sized.data[0].embedding) == 16
        assert "mock-1" in [m.id for m in sdk.models.list()]
        assert sdk.models.retrieve("mock-embed-1").id == "mock-embed-1"
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve("gpt-nope")
        with pytest.raises(openai.BadRequestError, match="stream"):
            sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "1+1"}], stream=True
            )


def test_the_openai_sdk_reads_the_rate_limit_headers_and_a_429(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rpm=2, tpm=10_000)
    messages: list[Any] = [{"role": "user", "content": "What is 1+1=___ ?"}]
    with client(server) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="mock-1", messages=messages, max_tokens=10
        )
        assert raw.parse().choices[0].message.content == "2"
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == "1"
        assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
        # a full bucket, less the prompt's 5 tokens and max_tokens
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 10_000 - 5 - 10
        sdk.chat.completions.create(model="mock-1", messages=messages)
        with pytest.raises(openai.RateLimitError) as info:
            sdk.chat.completions.with_raw_response.create(model="mock-1", messages=messages)
    error = info.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(error.response.headers["retry-after"]) <= 30
    assert error.request_id is not None and error.request_id.startswith("req_")


def test_the_openai_sdk_sees_a_wrong_key_as_an_authentication_error(
    keyed_server: MockServer,
) -> None:
    with client(keyed_server, key="sk-wrong") as sdk, pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_the_async_openai_sdk_chats_and_embeds_concurrently(keyed_server: MockServer) -> None:
    async def main() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{keyed_server.url}/v1", api_key=KEY, max_retries=0
        ) as sdk:

            async def ask(n: int) -> str:
                chat = await sdk.chat.completions.create(
                    model="mock-1", messages=[{"role": "user", "content": f"What is {n}+{n}?"}]
                )
                return chat.choices[0].message.content or ""

            answers = await asyncio.gather(*(ask(n) for n in range(10)))
            embedded = await sdk.embeddings.create(model="mock-embed-1", input="x")
            assert len(embedded.data[0].embedding) == 64
            return list(answers)

    assert asyncio.run(main()) == [str(2 * n) for n in range(10)]
