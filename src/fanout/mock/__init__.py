"""The embedded mock API server: a local, seedable stand-in for a REST or LLM API.

Start it in a test (background thread, free port)::

    from fanout.mock import MockServer

    with MockServer(latency=0.05, error_rate=0.1, rate_limit="100/s", seed=1) as server:
        requests.get(f"{server.url}/todos/1").json()
        server.stats()["by_id"]

or in its own process for benchmarks (``MockServer.spawn(...)``, the same arguments), or from
the shell (``fanout mock-server --latency 50ms``).

Endpoints
---------
``/todos/{id}``, ``/echo``, ``/delay/{seconds}``, ``/trickle/{seconds}``, ``/status/{code}``,
``/flaky/{key}?fail=K&code=C``; the OpenAI API: ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``, ``GET /v1/models``, ``GET /v1/models/{id}``
(anything else under ``/v1`` is OpenAI's "Invalid URL" 404); the Anthropic Messages API:
``POST /v1/messages``; and ``GET /stats``, ``POST /stats/reset``.

The model endpoints answer the arithmetic of the last user message (``+ - *``), accept any
model name, refuse ``stream: true`` with a 400, and count ``usage`` with the token estimator
:mod:`fanout.http._tokens` (prompt tokens = its count of the prompt; each answer's tokens =
characters / 4, rounded up), so a client's estimate and the server agree. Chat honours ``n``
and ``max_completion_tokens``/``max_tokens`` (an answer cut there ends with
``finish_reason: "length"``); completions take a string or a list of prompts, ``n`` answers
each, at most ``max_tokens`` (16 by default); embeddings are deterministic unit vectors
(``dimensions``, 64 by default; ``encoding_format`` float or base64). Every ``/v1`` answer
carries an ``x-request-id`` (``request-id`` on ``/v1/messages``) and errors are
OpenAI-shaped (``{"error": {"message", "type", "param", "code"}}``), or Anthropic-shaped on
``/v1/messages`` (``{"type": "error", "error": {"type", "message"}}``), which also requires
``anthropic-version`` and a key (``x-api-key``, or ``Authorization: Bearer`` as newer SDKs
send it) and needs ``max_tokens``.

The pipeline
------------
Every request but ``/stats`` is counted under an id: the ``X-Request-Id`` header if present,
else the ``id`` query parameter, else the top-level ``"id"`` of a JSON body, else the path.
Then, in order:

1. ``/v1``: with ``api_key`` set, a missing or wrong ``Authorization: Bearer`` is a 401.
2. ``rate_limit`` (at most N accepted in any window of the period): above it, 429 with
   ``Retry-After`` (whole seconds).
3. The model endpoints with ``rpm``/``tpm``: OpenAI-style token buckets that refill
   continuously (``rpm/60`` requests and ``tpm/60`` tokens a second) and hold ``bucket``
   seconds of refill (60 s: a minute's worth; 1 s: a 60th). A request reserves one request
   and its estimated tokens (:func:`fanout.http._tokens.estimate_tokens`: prompt + maximum
   answer) when it arrives; if either does not fit it is answered 429
   (``type: "requests"|"tokens"``, ``code: "rate_limit_exceeded"``) with ``retry-after``
   (and ``retry-after-ms``) until it would fit; a request larger than the whole token bucket
   gets a 429 without them. With ``settle_tokens``, the unused part of a reservation is given
   back after the answer (or the excess charged); by default the reservation stands.
4. An injected fault, drawn from the ``seed``, the request's id and how many times that id
   was seen (so a run gets the same faults whatever its concurrency): with probability
   ``throttle_rate`` a 429 with ``Retry-After: throttle_retry_after`` at once; with
   ``reset_rate`` the connection is reset; with ``unavailable_rate`` a 503 (529
   ``overloaded_error`` on ``/v1/messages``) and with ``error_rate`` a 500, both after the
   latency. The shares are of all requests; past a total of 1 the later ones get what is
   left (in the order throttle, 503, 500, reset). An id that has had ``max_faults``
   injected faults is always served.
5. With ``capacity``, at most that many requests are processed (latency + endpoint) at once;
   the rest queue in arrival order, so latency grows with the load.
6. The latency (plus uniform +/- ``jitter``) passes, then the endpoint answers.

``limit_schedule`` multiplies every limit (``rate_limit``, ``rpm``, ``tpm``) by a factor
from a given time after start or the last ``/stats/reset``: ``[(10.0, 0.5), (20.0, 1.0)]``
halves them from 10 s and restores them at 20 s.

Headers
-------
Every answer of the ``/v1`` OpenAI endpoints announces the buckets that are set:
``x-ratelimit-limit-requests`` (the per-minute limit, scaled by the schedule),
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` (time until the bucket is
full again, Go duration format: ``20ms``, ``1.5s``, ``6m0s``), and the same for ``-tokens``.
``/v1/messages`` says it Anthropic's way: ``anthropic-ratelimit-requests-limit``,
``-remaining``, ``-reset`` (an RFC 3339 time), and ``anthropic-ratelimit-tokens-*``.
``ratelimit_headers="ietf"`` announces ``rate_limit`` on every answer as
``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (whole seconds until the
window's quota is all back) and ``RateLimit-Policy: N;w=PERIOD``; ``"openai"`` as
``x-ratelimit-*-requests``; ``"none"`` (the default) not at all.

``GET /stats`` (``?window=S``)
------------------------------
What the server saw since start or the last ``POST /stats/reset`` (which also refills the
buckets, empties the window, restarts the schedule and forgets the ids' faults):

``started_at``, ``uptime``
    Unix time of the start or reset; seconds since.
``total``, ``by_id``, ``by_id_ok``
    Requests counted; per id; per id answered 2xx.
``per_second``, ``max_in_1s``, ``window``, ``max_in_window``
    Request starts per second since start; the most starts in any 1 s and in any ``window``
    seconds.
``by_status``
    Answers per HTTP status (resets have none).
``rate_limited``, ``rate_limited_by``
    All 429s of limits and throttle; and by cause: ``requests`` (bucket), ``tokens``
    (bucket), ``throttle`` (injected), ``window`` (``rate_limit``).
``errors_injected``, ``unavailable_injected``, ``resets``, ``faults_injected``
    Injected 500s; 503s/529s; connection resets; all injected faults (with throttles).
``faults_by_id``, ``faults_spared``
    Injected faults per id; requests that drew a fault but were served (``max_faults``).
``tokens_reserved``, ``tokens_used``
    Estimated tokens reserved by the model requests let in; tokens of the answers' ``usage``.
``buckets``
    ``{"requests": ..., "tokens": ...}``, each ``None`` or ``{"limit", "capacity",
    "remaining", "reset"}`` (``reset``: seconds until full).
``limit_factor``
    The schedule's factor now.
``in_flight``, ``max_in_flight``
    Requests being handled now (queued ones included); the most at once.
``queued``, ``max_queued``, ``queue_wait_total``, ``queue_wait_max``
    Requests waiting for a ``capacity`` slot now; the most at once; seconds they waited in
    total and at most.
``config``
    The settings (``api_key_set`` instead of the key).
"""

from fanout.mock._config import (
    MockConfig,
    MockSettings,
    parse_duration,
    parse_limit_change,
    parse_rate_limit,
)
from fanout.mock._server import MockProcess, MockServer, api, reset_stats, stats

__all__ = [
    "MockConfig",
    "MockProcess",
    "MockServer",
    "MockSettings",
    "api",
    "parse_duration",
    "parse_limit_change",
    "parse_rate_limit",
    "reset_stats",
    "stats",
]
