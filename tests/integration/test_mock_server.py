"""The embedded mock API server: endpoints, injected faults, /stats, and its CLI."""

from __future__ import annotations

import asyncio
import email.utils
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import requests
from click.testing import CliRunner

from fanout.cli._mock_server import mock_server_command
from fanout.mock import MockServer, parse_duration, parse_rate_limit, reset_stats, stats

MakeServer = Callable[..., MockServer]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def chat(url: str, body: Any) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=10)


def ask(url: str, question: Any) -> requests.Response:
    return chat(url, {"model": "mock-1", "messages": [{"role": "user", "content": question}]})


# --- /todos -------------------------------------------------------------------------------


def test_todo_is_shaped_like_jsonplaceholder_and_deterministic(
    mock_server: MockServer, make_mock_server: MakeServer
) -> None:
    other = make_mock_server()
    for todo_id in (1, 57, 200):
        first = requests.get(f"{mock_server.url}/todos/{todo_id}", timeout=10)
        again = requests.get(f"{other.url}/todos/{todo_id}", timeout=10)
        assert first.status_code == 200
        assert first.headers["Content-Type"].startswith("application/json")
        todo = first.json()
        assert set(todo) == {"userId", "id", "title", "completed"}
        assert todo["id"] == todo_id
        assert isinstance(todo["userId"], int)
        assert isinstance(todo["title"], str) and todo["title"]
        assert isinstance(todo["completed"], bool)
        assert again.json() == todo


@pytest.mark.parametrize("todo_id", ["0", "201", "abc", "-1"])
def test_todo_outside_1_to_200_is_a_json_404(mock_server: MockServer, todo_id: str) -> None:
    response = requests.get(f"{mock_server.url}/todos/{todo_id}", timeout=10)
    assert response.status_code == 404
    assert "error" in response.json()


# --- /echo --------------------------------------------------------------------------------


def test_echo_returns_method_path_query_headers_and_json_body(mock_server: MockServer) -> None:
    response = requests.put(
        f"{mock_server.url}/echo?a=1&a=2&b=x",
        json={"k": [1, 2]},
        headers={"X-Custom": "yes"},
        timeout=10,
    )
    echoed = response.json()
    assert echoed["method"] == "PUT"
    assert echoed["path"] == "/echo"
    assert echoed["query"] == {"a": ["1", "2"], "b": "x"}
    assert echoed["headers"]["X-Custom"] == "yes"
    assert echoed["json"] == {"k": [1, 2]}
    assert "text" not in echoed


def test_echo_returns_a_non_json_body_as_text_and_no_body_as_neither(
    mock_server: MockServer,
) -> None:
    text = requests.post(f"{mock_server.url}/echo", data=b"plain words", timeout=10).json()
    assert text["text"] == "plain words"
    assert "json" not in text
    empty = requests.get(f"{mock_server.url}/echo", timeout=10).json()
    assert empty["method"] == "GET"
    assert "json" not in empty and "text" not in empty


# --- /delay and /trickle ------------------------------------------------------------------


def test_delay_waits_at_least_the_asked_time(mock_server: MockServer) -> None:
    started = time.monotonic()
    response = requests.get(f"{mock_server.url}/delay/0.2", timeout=10)
    assert time.monotonic() - started >= 0.2
    assert response.json() == {"delay": 0.2}


@pytest.mark.parametrize("seconds", ["abc", "-1", "99999"])
def test_delay_rejects_a_bad_duration(mock_server: MockServer, seconds: str) -> None:
    assert requests.get(f"{mock_server.url}/delay/{seconds}", timeout=10).status_code == 400


def test_trickle_sends_one_byte_per_interval(mock_server: MockServer) -> None:
    response = requests.get(f"{mock_server.url}/trickle/0.4?interval=0.1", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "4"
    assert response.content == b"...."


def test_trickle_headers_arrive_at_once_so_only_a_total_deadline_stops_it(
    mock_server: MockServer,
) -> None:
    async def fetch() -> tuple[int, type[BaseException] | None]:
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{mock_server.url}/trickle/30") as response,
        ):
            try:
                await response.read()
            except TimeoutError as exc:
                return response.status, type(exc)
            return response.status, None

    status, error = asyncio.run(fetch())
    assert status == 200
    assert error is not None


# --- /status and /flaky -------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 400, 404, 500, 502])
def test_status_answers_that_status(mock_server: MockServer, code: int) -> None:
    response = requests.get(f"{mock_server.url}/status/{code}", timeout=10)
    assert response.status_code == code
    assert response.json() == {"status": code}
    assert "Retry-After" not in response.headers


def test_status_204_has_no_body(mock_server: MockServer) -> None:
    response = requests.delete(f"{mock_server.url}/status/204", timeout=10)
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("code", ["99", "600", "abc"])
def test_status_outside_200_to_599_is_rejected(mock_server: MockServer, code: str) -> None:
    assert requests.get(f"{mock_server.url}/status/{code}", timeout=10).status_code == 400


@pytest.mark.parametrize("code", [429, 503])
def test_status_429_and_503_carry_retry_after_seconds(mock_server: MockServer, code: int) -> None:
    default = requests.get(f"{mock_server.url}/status/{code}", timeout=10)
    assert default.status_code == code
    assert default.headers["Retry-After"] == "1"
    asked = requests.get(f"{mock_server.url}/status/{code}?retry_after=7", timeout=10)
    assert asked.headers["Retry-After"] == "7"
    none = requests.get(f"{mock_server.url}/status/{code}?retry_after=none", timeout=10)
    assert "Retry-After" not in none.headers


def test_status_429_can_carry_retry_after_as_an_http_date(mock_server: MockServer) -> None:
    before = time.time()
    response = requests.get(
        f"{mock_server.url}/status/429?retry_after=30&retry_after_date=1", timeout=10
    )
    after = time.time()
    header = response.headers["Retry-After"]
    assert header.endswith(" GMT")
    when = email.utils.parsedate_to_datetime(header).timestamp()
    # the HTTP date has 1 s resolution
    assert before + 30 - 1 <= when <= after + 30


def test_status_rejects_a_bad_retry_after(mock_server: MockServer) -> None:
    response = requests.get(f"{mock_server.url}/status/429?retry_after=soon", timeout=10)
    assert response.status_code == 400


def test_flaky_fails_the_first_k_times_per_key_then_succeeds(mock_server: MockServer) -> None:
    key = unique("flaky")
    url = f"{mock_server.url}/flaky/{key}?fail=2&code=429&retry_after=0"
    answers = [requests.get(url, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "0"
    assert answers[2].json() == {"key": key, "attempt": 3}
    other = requests.get(f"{mock_server.url}/flaky/{unique('flaky')}?fail=1", timeout=10)
    assert other.status_code == 503
    assert other.headers["Retry-After"] == "1"


def test_stats_reset_also_resets_flaky_attempts(make_mock_server: MakeServer) -> None:
    server = make_mock_server()
    url = f"{server.url}/flaky/k?fail=1&code=500"
    assert requests.get(url, timeout=10).status_code == 500
    assert requests.get(url, timeout=10).status_code == 200
    server.reset_stats()
    assert requests.get(url, timeout=10).status_code == 500


# --- /v1/chat/completions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is 1+2+3=___ ?", "6"),
        ("What is 10 - 3 + 25=___ ?", "32"),
        ("What is 2*3+4=___ ?", "10"),
        ("What is -5+3=___ ?", "-2"),
        ("What is 7 - -2=___ ?", "9"),
        ([{"type": "text", "text": "What is 40+2"}, {"type": "text", "text": "=___ ?"}], "42"),
    ],
)
def test_chat_answers_the_arithmetic_question(
    mock_server: MockServer, question: Any, expected: str
) -> None:
    response = ask(mock_server.url, question)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock-1"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": expected},
        "finish_reason": "stop",
    }
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_answers_the_last_user_message(mock_server: MockServer) -> None:
    messages = [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "1+1"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "What is 3+4=___ ?"},
    ]
    response = chat(mock_server.url, {"model": "m", "messages": messages})
    assert response.json()["choices"][0]["message"]["content"] == "7"


def test_chat_without_arithmetic_says_what_it_can_do(mock_server: MockServer) -> None:
    content = ask(mock_server.url, "Hello!").json()["choices"][0]["message"]["content"]
    assert "arithmetic" in content


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], None),
        ({"messages": [{"role": "user", "content": "1+1"}]}, "model"),
        ({"model": 3, "messages": [{"role": "user", "content": "1+1"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["1+1"]}, "messages.[0]"),
        ({"model": "m", "messages": [{"role": "boss", "content": "1+1"}]}, "messages.[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages.[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.[0].content"),
        ({"model": "m", "messages": [{"role": "system", "content": "1+1"}]}, "messages"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "1+1"}], "stream": True},
            "stream",
        ),
    ],
)
def test_chat_rejects_a_bad_request_with_an_openai_error(
    mock_server: MockServer, body: Any, param: str | None
) -> None:
    response = chat(mock_server.url, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_chat_rejects_a_body_that_is_not_json(mock_server: MockServer) -> None:
    response = requests.post(
        f"{mock_server.url}/v1/chat/completions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# --- /stats -------------------------------------------------------------------------------


def test_stats_count_per_id_by_header_then_query_then_json_body_then_path(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server()
    url = server.url
    with requests.Session() as session:
        session.get(f"{url}/echo?id=q", headers={"X-Request-Id": "header-id"}, timeout=10)
        session.get(f"{url}/echo?id=query-id", timeout=10)
        session.post(f"{url}/echo?other=1", json={"id": "body-id"}, timeout=10)
        session.post(f"{url}/echo", json={"id": 7}, timeout=10)
        session.get(f"{url}/todos/5?x=1", timeout=10)
        session.get(f"{url}/todos/5", timeout=10)
        session.get(f"{url}/status/500?id=broken", timeout=10)
    seen = server.stats()
    assert seen["by_id"] == {
        "header-id": 1,
        "query-id": 1,
        "body-id": 1,
        "7": 1,
        "/todos/5": 2,
        "broken": 1,
    }
    assert seen["by_id_ok"] == {"header-id": 1, "query-id": 1, "body-id": 1, "7": 1, "/todos/5": 2}
    assert seen["total"] == 7
    assert seen["by_status"] == {"200": 6, "500": 1}


def test_stats_per_second_buckets_add_up_and_stats_itself_is_not_counted(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server()
    with requests.Session() as session:
        for todo_id in range(1, 21):
            session.get(f"{server.url}/todos/{todo_id}", timeout=10)
    server.stats()
    seen = server.stats()
    assert seen["total"] == 20
    assert sum(seen["per_second"].values()) == 20
    assert all(int(second) >= 0 for second in seen["per_second"])
    assert seen["in_flight"] == 0
    assert seen["config"] == {
        "latency": 0.0,
        "jitter": 0.0,
        "error_rate": 0.0,
        "reset_rate": 0.0,
        "rate_limit": None,
        "seed": None,
        "rpm": None,
        "tpm": None,
        "bucket": 60.0,
        "throttle_rate": 0.0,
        "throttle_retry_after": 1.0,
        "unavailable_rate": 0.0,
        "max_faults": None,
        "limit_schedule": [],
        "capacity": None,
        "ratelimit_headers": "none",
        "settle_tokens": False,
        "api_key_set": False,
    }


def test_stats_max_in_window_counts_request_starts(make_mock_server: MakeServer) -> None:
    server = make_mock_server()
    with requests.Session() as session:
        for _ in range(12):
            session.get(f"{server.url}/echo", timeout=10)
    seen = stats(server.url, window=3600)
    # all 12 started within an hour, and within a second
    assert seen["max_in_window"] == 12
    assert seen["window"] == 3600
    assert seen["max_in_1s"] == 12
    assert 1 <= stats(server.url, window=1e-9)["max_in_window"] <= 12
    assert requests.get(f"{server.url}/stats?window=0", timeout=10).status_code == 400


def test_stats_max_in_flight_counts_concurrent_requests(make_mock_server: MakeServer) -> None:
    server = make_mock_server()

    async def hold_five() -> int:
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(session.get(f"{server.url}/delay/60?id={n}")) for n in range(5)
            ]
            in_flight = 0
            for _ in range(500):  # bounded: up to ~5 s
                in_flight = (await asyncio.to_thread(server.stats))["in_flight"]
                if in_flight == 5:
                    break
                await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return in_flight

    assert asyncio.run(hold_five()) == 5
    assert server.stats()["max_in_flight"] == 5


def test_stats_reset_clears_the_counters(make_mock_server: MakeServer) -> None:
    server = make_mock_server()
    requests.get(f"{server.url}/todos/1", timeout=10)
    assert server.stats()["total"] == 1
    reset_stats(server.url)
    seen = server.stats()
    assert seen["total"] == 0
    assert seen["by_id"] == {} and seen["per_second"] == {} and seen["by_status"] == {}


# --- faults -------------------------------------------------------------------------------


def statuses(url: str, count: int) -> list[int]:
    """Statuses of ``count`` sequential GETs; 0 for a reset connection."""
    result = []
    for n in range(count):
        try:
            # a fresh connection each time, so a reset can't leak into the next request
            result.append(requests.get(f"{url}/todos/{n % 200 + 1}", timeout=10).status_code)
        except requests.ConnectionError:
            result.append(0)
    return result


def test_error_rate_answers_500_about_that_often_and_is_seeded(
    make_mock_server: MakeServer,
) -> None:
    first = make_mock_server(error_rate=0.3, seed=42)
    second = make_mock_server(error_rate=0.3, seed=42)
    observed = statuses(first.url, 300)
    assert set(observed) == {200, 500}
    errors = observed.count(500)
    assert 50 <= errors <= 130  # mean 90, sd 7.9
    assert statuses(second.url, 300) == observed
    seen = first.stats()
    assert seen["errors_injected"] == errors
    assert seen["by_status"] == {"200": 300 - errors, "500": errors}
    for _ in range(100):  # bounded: about every third answer is a 500
        body = requests.get(f"{first.url}/status/200", timeout=10)
        if body.status_code == 500:
            break
    assert body.json()["error"]["type"] == "server_error"


def test_reset_rate_resets_connections_without_an_answer(make_mock_server: MakeServer) -> None:
    always = make_mock_server(reset_rate=1.0)
    assert statuses(always.url, 5) == [0] * 5
    seen = always.stats()
    assert seen["resets"] == 5
    assert seen["by_status"] == {}

    sometimes = make_mock_server(reset_rate=0.5, seed=3)
    observed = statuses(sometimes.url, 40)
    assert set(observed) == {0, 200}
    assert sometimes.stats()["resets"] == observed.count(0)


def test_reset_is_a_connection_error_for_aiohttp_too(make_mock_server: MakeServer) -> None:
    server = make_mock_server(reset_rate=1.0)

    async def fetch() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.url}/todos/1") as response,
        ):
            await response.read()

    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(fetch())


def test_rate_limit_answers_429_with_retry_after_over_the_limit(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rate_limit="5/10s")
    with requests.Session() as session:
        answers = [session.get(f"{server.url}/todos/1", timeout=10) for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    limited = answers[5]
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    error = limited.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    seen = server.stats()
    assert seen["rate_limited"] == 3
    assert seen["by_status"] == {"200": 5, "429": 3}
    assert seen["config"]["rate_limit"] == [5, 10.0]


def test_rate_limit_lets_requests_through_again_after_the_window(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(rate_limit="2/0.2s")
    with requests.Session() as session:
        first = [session.get(f"{server.url}/echo", timeout=10).status_code for _ in range(3)]
        assert first == [200, 200, 429]
        status = 429
        for _ in range(200):  # bounded: the window frees a slot within 0.2 s
            status = session.get(f"{server.url}/echo", timeout=10).status_code
            if status == 200:
                break
            time.sleep(0.01)
    assert status == 200


def test_latency_and_jitter_delay_every_response(make_mock_server: MakeServer) -> None:
    server = make_mock_server(latency=0.15, jitter="50ms", seed=1)
    with requests.Session() as session:
        for _ in range(3):
            started = time.monotonic()
            assert session.get(f"{server.url}/todos/1", timeout=10).status_code == 200
            assert time.monotonic() - started >= 0.1


def test_stats_are_exempt_from_faults_and_limits(make_mock_server: MakeServer) -> None:
    server = make_mock_server(error_rate=1.0, reset_rate=1.0, rate_limit="1/h", latency=30)
    for _ in range(3):
        assert server.stats()["total"] == 0
    server.reset_stats()


# --- Python API and CLI -------------------------------------------------------------------


def test_mock_server_url_and_port_and_a_taken_port(make_mock_server: MakeServer) -> None:
    server = make_mock_server()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    assert server.url.endswith(f":{server.port}")
    with pytest.raises(OSError):
        MockServer(port=server.port).start()


def test_mock_server_stop_cuts_in_flight_requests() -> None:
    server = MockServer().start()
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            requests.get(f"{server.url}/delay/60", timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=slow)
    caller.start()
    for _ in range(500):  # bounded: up to ~5 s
        if server.stats()["in_flight"] == 1:
            break
        time.sleep(0.01)
    server.stop()
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert len(errors) == 1
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_parsing_durations_and_rate_limits() -> None:
    assert parse_duration("50ms") == pytest.approx(0.05)
    assert parse_duration("0.05s") == pytest.approx(0.05)
    assert parse_duration("1s") == 1.0
    assert parse_duration("0.05") == pytest.approx(0.05)
    assert parse_rate_limit("100/s") == (100, 1.0)
    assert parse_rate_limit("600/min") == (600, 60.0)
    assert parse_rate_limit("5/h") == (5, 3600.0)
    assert parse_rate_limit("10/2s") == (10, 2.0)
    with pytest.raises(ValueError, match="duration"):
        parse_duration("fast")
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate_limit("0/s")


def server_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``fanout mock-server --port 0 ARGS`` (a later --port wins) and its first stdout line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fanout", "mock-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_cli_prints_its_url_first_and_exits_130_or_143_on_a_signal(
    signum: int, code: int
) -> None:
    process, first_line = server_process("--latency", "10ms", "--rate-limit", "100/s")
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first_line)
        assert requests.get(f"{first_line}/todos/3", timeout=10).json()["id"] == 3
        assert stats(first_line)["config"]["rate_limit"] == [100, 1.0]
        assert stats(first_line)["config"]["latency"] == pytest.approx(0.01)
    finally:
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == code
    assert stderr == ""


def test_spawn_runs_the_server_in_its_own_process() -> None:
    with MockServer.spawn(latency="1ms", rate_limit=50.0, seed=9) as child:
        assert child.pid != 0
        assert requests.get(f"{child.url}/todos/9", timeout=10).status_code == 200
        seen = child.stats()
        assert seen["total"] == 1
        assert seen["config"]["rate_limit"] == [50, 1.0]
        assert seen["config"]["seed"] == 9
        child.reset_stats()
        assert child.stats()["total"] == 0
    assert child.stop() == 143


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latency", "fast"], "duration 'fast'"),
        (["--rate-limit", "lots"], "rate limit 'lots'"),
        (["--error-rate", "2"], "--error-rate"),
        (["--port", "-1"], "--port"),
    ],
)
def test_cli_rejects_bad_options_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(mock_server_command, args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_on_a_given_port_prints_that_url_and_a_taken_port_is_a_one_line_error(
    make_mock_server: MakeServer,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process, first_line = server_process("--port", str(port))
    try:
        assert first_line == f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 143

    taken = make_mock_server()
    busy, first_line = server_process("--port", str(taken.port))
    _, stderr = busy.communicate(timeout=10)
    assert busy.returncode == 1
    assert first_line == ""
    assert stderr.startswith(f"Error: cannot listen on 127.0.0.1:{taken.port}: ")
    assert stderr.count("\n") == 1


def test_spawn_passes_every_setting_to_the_child_and_the_api_key_not_in_its_argv() -> None:
    settings: dict[str, Any] = {
        "rpm": 120,
        "tpm": 50_000,
        "bucket": "1s",
        "throttle_rate": 0.15,
        "throttle_retry_after": 2.5,
        "unavailable_rate": 0.03,
        "max_faults": 3,
        "limit_schedule": ["20s:1", (10.0, 0.5)],
        "capacity": 20,
        "ratelimit_headers": "ietf",
        "settle_tokens": True,
        "api_key": "sk-child-key",
        "seed": 4,
    }
    with MockServer.spawn(**settings) as child:
        assert "sk-child-key" not in " ".join(child.process.args)  # type: ignore[arg-type]
        config = child.stats()["config"]
        anonymous = requests.get(f"{child.url}/v1/models", timeout=10)
        keyed = requests.get(
            f"{child.url}/v1/models", headers={"Authorization": "Bearer sk-child-key"}, timeout=10
        )
    assert config["api_key_set"] is True
    expected = {
        "rpm": 120,
        "tpm": 50_000,
        "bucket": 1.0,
        "throttle_rate": 0.15,
        "throttle_retry_after": 2.5,
        "unavailable_rate": 0.03,
        "max_faults": 3,
        "limit_schedule": [[10.0, 0.5], [20.0, 1.0]],
        "capacity": 20,
        "ratelimit_headers": "ietf",
        "settle_tokens": True,
        "seed": 4,
    }
    assert {name: config[name] for name in expected} == expected
    assert anonymous.status_code == 401
    assert keyed.status_code in (200, 429)  # the throttle share applies here too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit-change", "10s"], "limit change '10s'"),
        (["--limit-change", "10s:0"], "factor must be a number > 0"),
        (["--ratelimit-headers", "draft"], "--ratelimit-headers"),
        (["--throttle-rate", "1.5"], "--throttle-rate"),
        (["--throttle-retry-after", "soon"], "duration 'soon'"),
        (["--rpm", "0"], "--rpm"),
        (["--bucket", "0"], "bucket must be a number of seconds > 0"),
        (["--capacity", "0"], "--capacity"),
        (["--max-faults", "-1"], "--max-faults"),
    ],
)
def test_cli_rejects_bad_new_options_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(mock_server_command, args)
    assert result.exit_code == 2
    assert message in result.output
