"""The mock server's load-dependent limits on a real server: OpenAI requests- and
tokens-per-minute buckets and their headers, short buckets, a limit that changes at a given
time, IETF draft headers for ``rate_limit``, and tokens settled after an answer."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from fanout.http._tokens import estimate_tokens, prompt_tokens
from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]

OPENAI_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def go_seconds(text: str) -> float:
    """Seconds in an OpenAI reset value such as ``6m0s``, ``1.5s`` or ``20ms``."""
    assert re.fullmatch(r"(?:\d+(?:\.\d+)?(?:h|ms|m|s))+", text), text
    return sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(text))


def chat_body(question: str = "What is 1+2=___ ?", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-1", "messages": [{"role": "user", "content": question}], **extra}


def post_chat(session: requests.Session, url: str, body: dict[str, Any]) -> requests.Response:
    return session.post(f"{url}/v1/chat/completions", json=body, timeout=10)


def test_rpm_answers_429_over_the_bucket_with_openai_headers_on_every_answer(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rpm=3)
    with requests.Session() as session:
        answers = [post_chat(session, server.url, chat_body()) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "3"
        assert answer.headers["x-request-id"].startswith("req_")
        assert "x-ratelimit-limit-tokens" not in answer.headers  # no tpm set
    # one request comes back every 20 s; the test takes far less than that
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert 19.0 < go_seconds(answers[0].headers["x-ratelimit-reset-requests"]) <= 20.0
    assert 59.0 < go_seconds(answers[3].headers["x-ratelimit-reset-requests"]) <= 60.0
    limited = answers[3]
    assert 18 <= int(limited.headers["retry-after"]) <= 20
    assert 18_000 <= int(limited.headers["retry-after-ms"]) <= 20_000
    assert limited.json() == {
        "error": {
            "message": limited.json()["error"]["message"],
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert limited.json()["error"]["message"].startswith("Rate limit reached for requests")
    seen = server.stats()
    assert seen["rate_limited_by"] == {"requests": 1, "tokens": 0, "throttle": 0, "window": 0}
    assert seen["rate_limited"] == 1
    assert seen["buckets"]["requests"]["remaining"] == 0
    assert seen["buckets"]["tokens"] is None


def test_tpm_reserves_the_estimate_on_arrival_and_refuses_what_does_not_fit(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(tpm=60)  # one token a second comes back
    body = chat_body("x" * 20 + " 1+1", max_tokens=20)
    cost = estimate_tokens(body)
    assert cost == 26  # 24 characters: 6 tokens, plus max_tokens
    with requests.Session() as session:
        answers = [post_chat(session, server.url, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    remaining = [int(a.headers["x-ratelimit-remaining-tokens"]) for a in answers]
    assert 34 <= remaining[0] <= 36
    assert 8 <= remaining[1] <= 11
    assert all(a.headers["x-ratelimit-limit-tokens"] == "60" for a in answers)
    reset = go_seconds(answers[1].headers["x-ratelimit-reset-tokens"])
    assert 48.0 < reset <= 52.0  # 52 tokens to refill at 1 a second
    limited = answers[2]
    assert limited.json()["error"]["type"] == "tokens"
    assert "Rate limit reached for tokens" in limited.json()["error"]["message"]
    assert 14 <= int(limited.headers["retry-after"]) <= 18
    seen = server.stats()
    assert seen["rate_limited_by"]["tokens"] == 1
    assert seen["tokens_reserved"] == 2 * cost
    usage = answers[0].json()["usage"]
    assert usage["prompt_tokens"] == prompt_tokens(body) == 6
    assert seen["tokens_used"] == 2 * usage["total_tokens"]


def test_a_request_larger_than_the_token_bucket_is_refused_without_retry_after(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(tpm=600, bucket="1s")  # holds 10 tokens
    response = requests.post(
        f"{server.url}/v1/chat/completions", json=chat_body(max_tokens=50), timeout=10
    )
    assert response.status_code == 429
    assert "Request too large" in response.json()["error"]["message"]
    assert "retry-after" not in response.headers


def test_a_short_bucket_holds_a_sixtieth_of_the_limit_and_refills_within_a_second(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rpm=120, bucket="1s")  # 2 a second, 2 deep
    full = make_mock_server(rpm=120)
    with requests.Session() as session:
        statuses = [post_chat(session, server.url, chat_body()).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert [post_chat(session, full.url, chat_body()).status_code for _ in range(3)] == [
            200
        ] * 3
        status = 429
        deadline = time.monotonic() + 5
        while status == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = post_chat(session, server.url, chat_body())
            status = answer.status_code
    assert status == 200
    assert answer.headers["x-ratelimit-limit-requests"] == "120"
    assert go_seconds(answer.headers["x-ratelimit-reset-requests"]) <= 1.0
    assert server.stats()["buckets"]["requests"]["capacity"] == 2.0


def poll_limits(url: str, until: Callable[[list[tuple[str, str]]], bool]) -> list[tuple[str, str]]:
    """The distinct (x-ratelimit-limit-requests, RateLimit-Limit) seen on GET /v1/models,
    polled every 20 ms until ``until(seen)`` or 5 s."""
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 5
    with requests.Session() as session:
        while time.monotonic() < deadline and not until(seen):
            headers = session.get(f"{url}/v1/models", timeout=10).headers
            limits = (headers["x-ratelimit-limit-requests"], headers["RateLimit-Limit"])
            if not seen or seen[-1] != limits:
                seen.append(limits)
            time.sleep(0.02)
    return seen


def test_a_limit_schedule_halves_every_limit_then_doubles_it_back(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(
        rpm=600,
        rate_limit="1000/s",
        ratelimit_headers="ietf",
        limit_schedule=[(0.5, 0.5), (1.5, 1.0)],
    )
    seen = poll_limits(server.url, lambda seen: len(seen) == 3)
    assert seen == [("600", "1000"), ("300", "500"), ("600", "1000")]
    assert server.stats()["limit_factor"] == 1.0
    # the schedule starts again from a reset
    server.reset_stats()
    seen = poll_limits(server.url, lambda seen: len(seen) == 2)
    assert seen == [("600", "1000"), ("300", "500")]
    assert server.stats()["config"]["limit_schedule"] == [[0.5, 0.5], [1.5, 1.0]]


def test_a_halved_limit_refuses_what_the_full_one_accepted(make_mock_server: MakeServer) -> None:
    server = make_mock_server(rpm=8, bucket="60s", limit_schedule=[(0.0, 0.5)])
    with requests.Session() as session:
        statuses = [post_chat(session, server.url, chat_body()).status_code for _ in range(5)]
    assert statuses == [200] * 4 + [429]


def test_ietf_headers_announce_the_rate_limit_window_on_every_answer(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rate_limit="3/10s", ratelimit_headers="ietf")
    with requests.Session() as session:
        answers = [session.get(f"{server.url}/todos/1", timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Limit"] for a in answers] == ["3"] * 4
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    for answer in answers:
        assert 9 <= int(answer.headers["RateLimit-Reset"]) <= 10
        assert answer.headers["RateLimit-Policy"] == "3;w=10"
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 10
    assert server.stats()["rate_limited_by"]["window"] == 1


def test_the_rate_limit_window_has_no_ratelimit_headers_by_default_or_openais_on_request(
    make_mock_server: MakeServer,
) -> None:
    plain = make_mock_server(rate_limit="3/10s")
    answer = requests.get(f"{plain.url}/todos/1", timeout=10)
    assert not [name for name in answer.headers if "ratelimit" in name.lower()]
    openai_style = make_mock_server(rate_limit="3/10s", ratelimit_headers="openai")
    answer = requests.get(f"{openai_style.url}/todos/1", timeout=10)
    assert answer.headers["x-ratelimit-limit-requests"] == "3"
    assert answer.headers["x-ratelimit-remaining-requests"] == "2"
    assert 9.0 < go_seconds(answer.headers["x-ratelimit-reset-requests"]) <= 10.0


@pytest.mark.parametrize("settle", [False, True])
def test_settle_tokens_gives_back_what_the_answer_did_not_use(
    make_mock_server: MakeServer, settle: bool
) -> None:
    server = make_mock_server(tpm=60_000, settle_tokens=settle)
    body = chat_body(max_tokens=1000)
    answer = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    used = answer.json()["usage"]["total_tokens"]
    seen = server.stats()
    assert seen["tokens_reserved"] == estimate_tokens(body)
    assert seen["tokens_used"] == used
    remaining = seen["buckets"]["tokens"]["remaining"]
    # the refill over the test's runtime is 1,000 tokens a second: bound it by the clock
    spent = 60_000 - (used if settle else estimate_tokens(body))
    assert spent <= remaining <= spent + 1000 * seen["uptime"] + 1
