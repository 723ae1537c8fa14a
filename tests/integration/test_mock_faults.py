"""The mock server's injected faults on a real server: a load-independent 429 share, 503s,
at most N faults per request id, reproducibility under concurrency, and latency that grows
past a processing capacity."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import requests

from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]


def status_of(url: str, request_id: str) -> int:
    """The status of one GET on a fresh connection; 0 for a reset connection."""
    try:
        return requests.get(url, headers={"X-Request-Id": request_id}, timeout=10).status_code
    except requests.ConnectionError:
        return 0


def test_throttle_answers_429_with_retry_after_about_that_often_whatever_the_load(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(throttle_rate=0.3, seed=5)
    with requests.Session() as session:
        answers = [
            session.get(f"{server.url}/todos/1", headers={"X-Request-Id": f"t{n}"}, timeout=10)
            for n in range(200)
        ]
    limited = [a for a in answers if a.status_code == 429]
    assert {a.status_code for a in answers} == {200, 429}
    assert 35 <= len(limited) <= 85  # mean 60, sd 6.5
    for answer in limited:
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["retry-after-ms"] == "1000"
        assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    seen = server.stats()
    assert seen["rate_limited_by"]["throttle"] == len(limited)
    assert seen["faults_injected"] == len(limited)
    assert seen["config"]["throttle_rate"] == 0.3


def test_throttle_retry_after_is_configurable(make_mock_server: MakeServer) -> None:
    server = make_mock_server(throttle_rate=1.0, throttle_retry_after=3)
    answer = requests.get(f"{server.url}/todos/1", timeout=10)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    silent = make_mock_server(throttle_rate=1.0, throttle_retry_after=None)
    assert "Retry-After" not in requests.get(f"{silent.url}/todos/1", timeout=10).headers


def test_unavailable_rate_answers_503_about_that_often(make_mock_server: MakeServer) -> None:
    server = make_mock_server(unavailable_rate=0.2, seed=11)
    with requests.Session() as session:
        answers = [
            session.get(f"{server.url}/echo", headers={"X-Request-Id": f"u{n}"}, timeout=10)
            for n in range(200)
        ]
    unavailable = [a for a in answers if a.status_code == 503]
    assert {a.status_code for a in answers} == {200, 503}
    assert 20 <= len(unavailable) <= 60  # mean 40, sd 5.7
    assert unavailable[0].json()["error"]["type"] == "server_error"
    seen = server.stats()
    assert seen["unavailable_injected"] == len(unavailable)
    assert seen["by_status"]["503"] == len(unavailable)


def test_max_faults_serves_a_request_id_after_n_faults(make_mock_server: MakeServer) -> None:
    server = make_mock_server(throttle_rate=1.0, max_faults=3)
    url = f"{server.url}/todos/2"
    assert [status_of(url, "same") for _ in range(5)] == [429, 429, 429, 200, 200]
    assert status_of(url, "other") == 429
    seen = server.stats()
    assert seen["faults_by_id"] == {"same": 3, "other": 1}
    assert seen["faults_spared"] == 2
    assert seen["by_id_ok"] == {"same": 2}


def test_a_benchmark_mix_of_faults_serves_every_id_within_max_faults_plus_one(
    make_mock_server: MakeServer,
) -> None:
    mix = {"throttle_rate": 0.15, "error_rate": 0.05, "unavailable_rate": 0.03}
    server = make_mock_server(**mix, reset_rate=0.02, max_faults=3, seed=2024)
    attempts = {}
    for n in range(60):
        statuses = []
        while not statuses or statuses[-1] != 200:
            assert len(statuses) <= 3, statuses  # bounded: the 4th try is always served
            statuses.append(status_of(f"{server.url}/todos/3", f"mix-{n}"))
        attempts[f"mix-{n}"] = statuses
    seen = server.stats()
    faults = sum(len(statuses) - 1 for statuses in attempts.values())
    assert faults == seen["faults_injected"] > 0
    assert set(seen["by_id_ok"].values()) == {1}
    assert len(seen["by_id_ok"]) == 60
    assert all(count <= 3 for count in seen["faults_by_id"].values())
    # the same seed gives the same run, request for request
    again = make_mock_server(**mix, reset_rate=0.02, max_faults=3, seed=2024)
    for request_id, statuses in attempts.items():
        replay = [status_of(f"{again.url}/todos/3", request_id) for _ in statuses]
        assert replay == statuses


def test_faults_are_the_same_whatever_the_concurrency_and_order(
    make_mock_server: MakeServer,
) -> None:
    settings = {"throttle_rate": 0.3, "error_rate": 0.2, "seed": 99}
    ids = [f"c{n}" for n in range(40)]
    one_by_one = make_mock_server(**settings)
    expected = {i: status_of(f"{one_by_one.url}/todos/4", i) for i in ids}
    concurrent = make_mock_server(**settings)

    async def all_at_once() -> dict[str, int]:
        async with aiohttp.ClientSession() as session:

            async def one(request_id: str) -> tuple[str, int]:
                headers = {"X-Request-Id": request_id}
                async with session.get(f"{concurrent.url}/todos/4", headers=headers) as answer:
                    await answer.read()
                    return request_id, answer.status

            return dict(await asyncio.gather(*(one(i) for i in reversed(ids))))

    assert asyncio.run(all_at_once()) == expected
    assert set(expected.values()) == {200, 429, 500}


def test_past_capacity_requests_queue_and_their_latency_grows(
    make_mock_server: MakeServer,
) -> None:
    server = make_mock_server(capacity=2, latency=0.5)

    async def six_at_once() -> dict[str, object]:
        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(session.get(f"{server.url}/todos/{n + 1}?id=q{n}"))
                for n in range(6)
            ]
            snapshot: dict[str, object] = {}
            for _ in range(500):  # bounded: up to ~5 s for all six to arrive
                snapshot = await asyncio.to_thread(server.stats)
                if snapshot["in_flight"] == 6:
                    break
                await asyncio.sleep(0.01)
            for answer in await asyncio.gather(*tasks):
                assert answer.status == 200
                answer.release()
            return snapshot

    # with all six in, none finished: two are processed, four wait their turn
    snapshot = asyncio.run(six_at_once())
    assert snapshot["in_flight"] == 6
    assert snapshot["queued"] == 4
    seen = server.stats()
    assert seen["max_queued"] == 4
    assert seen["queued"] == 0
    # the server's own clock: the last two arrived before the first round ended, and got
    # a slot after the second one (about 1 s each when arrivals are close together)
    assert seen["queue_wait_max"] >= 0.45
    assert seen["queue_wait_total"] >= 2 * 0.45
    assert seen["config"]["capacity"] == 2
