"""The embedded mock API server: a local, seedable stand-in for a REST or LLM API.

Start it in a test (background thread, free port)::

    from fanout.mock import MockServer

    with MockServer(latency=0.05, error_rate=0.1, rate_limit="100/s", seed=1) as server:
        requests.get(f"{server.url}/todos/1").json()
        server.stats()["by_id"]

or in its own process for benchmarks (``MockServer.spawn(...)``), or from the shell
(``fanout mock-server --latency 50ms``).

Endpoints: ``/todos/{id}``, ``/echo``, ``/delay/{seconds}``, ``/trickle/{seconds}``,
``/status/{code}``, ``/flaky/{key}?fail=K&code=C``, ``POST /v1/chat/completions``,
``GET /stats``, ``POST /stats/reset``.

Every request but ``/stats`` is counted under an id: the ``X-Request-Id`` header if present,
else the ``id`` query parameter, else the top-level ``"id"`` of a JSON body, else the path.
Then, in order: over ``rate_limit`` (at most N accepted in any window of the period) it answers
429 with ``Retry-After``; with probability ``reset_rate`` the connection is reset; the latency
(plus uniform +/- ``jitter``) passes; with probability ``error_rate`` it answers 500.
"""

from fanout.mock._config import MockConfig, parse_duration, parse_rate_limit
from fanout.mock._server import MockProcess, MockServer, api, reset_stats, stats

__all__ = [
    "MockConfig",
    "MockProcess",
    "MockServer",
    "api",
    "parse_duration",
    "parse_rate_limit",
    "reset_stats",
    "stats",
]
