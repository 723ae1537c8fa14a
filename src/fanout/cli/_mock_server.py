"""``fanout mock-server``: run the mock API in the foreground."""

from __future__ import annotations

import sys
from typing import Any

import click

from fanout.cli._util import EXIT_FAILURES, signal_exit_code
from fanout.mock._config import (
    API_KEY_VARIABLE,
    RATELIMIT_HEADER_STYLES,
    MockConfig,
    parse_duration,
    parse_limit_change,
    parse_rate_limit,
)


def duration_option(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A click callback: ``50ms``, ``0.05s`` or ``0.05`` to seconds."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _rate_limit(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, float] | None:
    if value is None:
        return None
    try:
        return parse_rate_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _limit_changes(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[float, float], ...]:
    try:
        changes = [parse_limit_change(value) for value in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return tuple(sorted(changes, key=lambda change: change[0]))


def _retry_after(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    if value == "none":
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}, or none") from None
    if seconds > 3600:
        raise click.BadParameter(f"must be at most 3600 s (got {value!r})")
    return seconds


def _announce(url: str) -> None:
    # the first line of stdout is the contract: scripts and MockServer.spawn() read it
    print(url, flush=True)


@click.command("mock-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--latency",
    callback=duration_option,
    metavar="DURATION",
    default="0",
    show_default=True,
    help="Added to every response: 50ms, 0.05s or 0.05 (seconds).",
)
@click.option(
    "--jitter",
    callback=duration_option,
    metavar="DURATION",
    default="0",
    show_default=True,
    help="Latency varies uniformly by up to +/- this much.",
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Process at most N requests at once (each takes the latency); the rest queue.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered 500.",
)
@click.option(
    "--unavailable-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered 503 (529 overloaded on /v1/messages).",
)
@click.option(
    "--throttle-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered 429 whatever the load.",
)
@click.option(
    "--throttle-retry-after",
    callback=_retry_after,
    metavar="SECONDS",
    default="1",
    show_default=True,
    help="Retry-After of the --throttle-rate 429s, or none.",
)
@click.option(
    "--reset-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests whose connection is reset without an answer.",
)
@click.option(
    "--max-faults",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="At most N injected faults per request id; then it is always served.",
)
@click.option(
    "--rate-limit",
    callback=_rate_limit,
    metavar="RATE",
    default=None,
    help="Answer 429 + Retry-After above this rate: 100/s, 600/min, 5/h.",
)
@click.option(
    "--ratelimit-headers",
    type=click.Choice(RATELIMIT_HEADER_STYLES),
    default="none",
    show_default=True,
    help="Announce --rate-limit on every answer: ietf (RateLimit-*) or openai (x-ratelimit-*).",
)
@click.option(
    "--rpm",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Requests per minute of the /v1 model endpoints (an OpenAI-style token bucket).",
)
@click.option(
    "--tpm",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Tokens per minute of the /v1 model endpoints, reserved as a request arrives.",
)
@click.option(
    "--bucket",
    callback=duration_option,
    metavar="DURATION",
    default="60s",
    show_default=True,
    help="Depth of the --rpm/--tpm buckets: 60s holds a minute's worth, 1s a 60th.",
)
@click.option(
    "--settle-tokens/--no-settle-tokens",
    default=False,
    show_default=True,
    help="After an answer, give back the reserved tokens its usage did not need.",
)
@click.option(
    "--limit-change",
    "limit_schedule",
    multiple=True,
    callback=_limit_changes,
    metavar="TIME:FACTOR",
    help="From TIME after start (or /stats/reset), multiply every limit by FACTOR "
    "(repeat: --limit-change 10s:0.5 --limit-change 20s:1).",
)
@click.option(
    "--api-key",
    envvar=API_KEY_VARIABLE,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="Require this key on /v1 (Authorization: Bearer KEY; x-api-key on /v1/messages).",
)
@click.option("--seed", type=int, default=None, help="Seed of the faults and jitter.")
def mock_server_command(host: str, port: int, **settings: Any) -> None:
    """Run the embedded mock API server until Ctrl-C or SIGTERM (exit 130 or 143).

    Prints its base URL (http://127.0.0.1:PORT) as the first line of output. Endpoints:
    /todos/{id}, /echo, /delay/{seconds}, /trickle/{seconds}, /status/{code}, /flaky/{key},
    POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/messages (Anthropic),
    GET /v1/models, /stats, POST /stats/reset.
    """
    from fanout.mock._server import serve_forever

    try:
        config = MockConfig(**settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        received = serve_forever(config, host, port, _announce)
    except OSError as exc:
        click.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_FAILURES)
    sys.exit(signal_exit_code(received))
