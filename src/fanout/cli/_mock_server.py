"""``fanout mock-server``: run the mock API in the foreground."""

from __future__ import annotations

import sys

import click

from fanout.mock._config import MockConfig, parse_duration, parse_rate_limit


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
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of answering 500.",
)
@click.option(
    "--reset-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of resetting the connection without an answer.",
)
@click.option(
    "--rate-limit",
    callback=_rate_limit,
    metavar="RATE",
    default=None,
    help="Answer 429 + Retry-After above this rate: 100/s, 600/min, 5/h.",
)
@click.option("--seed", type=int, default=None, help="Seed of the fault and jitter RNG.")
def mock_server_command(
    host: str,
    port: int,
    latency: float,
    jitter: float,
    error_rate: float,
    reset_rate: float,
    rate_limit: tuple[int, float] | None,
    seed: int | None,
) -> None:
    """Run the embedded mock API server until Ctrl-C.

    Prints its base URL (http://127.0.0.1:PORT) as the first line of output. Endpoints:
    /todos/{id}, /echo, /delay/{seconds}, /trickle/{seconds}, /status/{code}, /flaky/{key},
    POST /v1/chat/completions, /stats, POST /stats/reset.
    """
    from fanout.mock._server import serve_forever

    config = MockConfig(
        latency=latency,
        jitter=jitter,
        error_rate=error_rate,
        reset_rate=reset_rate,
        rate_limit=rate_limit,
        seed=seed,
    )
    try:
        serve_forever(config, host, port, _announce)
    except OSError as exc:
        click.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
