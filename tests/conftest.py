"""Shared fixtures: the mock API server on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fanout.mock import MockServer


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    """One mock server (no faults) for the whole session; use unique ids in its /stats."""
    with MockServer() as server:
        yield server


@pytest.fixture
def make_mock_server() -> Iterator[Callable[..., MockServer]]:
    """A factory of started mock servers with custom settings, stopped after the test.

    ``make_mock_server(latency=0.05, rate_limit="5/s", seed=1)`` takes MockServer's arguments.
    """
    servers: list[MockServer] = []

    def make(**settings: Any) -> MockServer:
        server = MockServer(**settings).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
