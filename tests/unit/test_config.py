"""The keywords of map/imap/amap/aimap: defined and checked once, through the public API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fanout
from fanout import ConfigError

API = [fanout.map, fanout.imap]


def identity(x: int) -> int:
    return x


def _run_async(fn: Any, **options: Any) -> Any:
    async def main() -> Any:
        return await fanout.amap(identity, [1], **options)

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retries": -1}, "retries=-1"),
        ({"retries": 1.5}, "retries=1.5"),
        ({"backoff": -1}, "backoff=-1"),
        ({"max_retry_after": float("inf")}, "max_retry_after=inf"),
        ({"retry_on": "oops"}, "retry_on='oops'"),
        ({"retry_on": [ValueError, "x"]}, "retry_on=[<class 'ValueError'>, 'x']"),
        ({"retry_on": ()}, "retry_on=()"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": True}, "timeout=True"),
        ({"concurrency": 0}, "concurrency=0"),
        ({"concurrency": 2.5}, "concurrency=2.5"),
        ({"ordered": "yes"}, "ordered='yes'"),
        ({"errors": "ignore"}, "errors='ignore'"),
        ({"rate": "0/s"}, "rate='0/s'"),
        ({"mode": "proces"}, "did you mean 'process'?"),
        ({"progress": "on"}, "progress='on'"),
        ({"progress_interval": -1}, "progress_interval=-1"),
        ({"progress_details": "12 tokens/s"}, "progress_details='12 tokens/s'"),
        ({"server_limits": {"rpm": 100}}, "server_limits={'rpm': 100}"),
        ({"server_limits": {"requests": "0/min"}}, "server_limits['requests']='0/min'"),
        ({"server_limits": {"tokens": "1000/min"}}, "needs cost=fn"),
        ({"executor": "thread"}, "executor='thread'"),
    ],
)
def test_a_bad_value_is_one_config_error_naming_it(options: dict[str, Any], named: str) -> None:
    for api in (*API, _run_async):
        with pytest.raises(ConfigError) as info:
            result = api(identity, [1], **options) if api is not _run_async else api(
                identity, **options)
            list(result)
        assert named in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("peer", ["max_workers", "n_jobs", "workers"])
def test_a_peer_keyword_gets_a_hint(peer: str) -> None:
    for api in API:
        with pytest.raises(TypeError, match=r"did you mean concurrency=\?") as info:
            api(identity, [1], **{peer: 4})
        assert isinstance(info.value, ConfigError)
        assert repr(peer) in str(info.value)


def test_other_misspellings_get_the_closest_keyword() -> None:
    with pytest.raises(TypeError, match=r"'retires'.*did you mean retries=\?"):
        fanout.map(identity, [1], retires=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="chunksize"):
        fanout.map(identity, [1], chunksize=100)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'stop'"):  # stop= is for the async API
        fanout.map(identity, [1], stop=None)  # type: ignore[call-arg]


def test_mode_and_executor_must_agree() -> None:
    with pytest.raises(ConfigError, match="disagree"):
        fanout.map(identity, [1], mode="process", executor=fanout.ThreadExecutor())
    results = fanout.map(identity, [1, 2], mode="thread", executor=fanout.ThreadExecutor())
    assert results.values() == [1, 2]


def test_a_coroutine_object_instead_of_a_function_gets_the_fix() -> None:
    async def fetch(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match=r"write fanout.map\(f, items\)"):
        fanout.map(fetch(1), [1])  # type: ignore[arg-type]
