"""``fanout chat PROMPTS -o ANSWERS.jsonl --model MODEL``: a batch of prompts to a chat API.

Built on ``fanout http``'s machinery, not beside it: every prompt becomes the request that
sends it (``fanout.http._chat_input``), checked whole before anything is sent; the run is
the core's (``fanout.aimap_batches``) with the ``HttpClient`` under a ``ChatClient`` that
reads the answers; the flow control follows the API's rate-limit headers, and ``--rpm`` and
``--tpm`` are the API's limits known in advance (``server_limits``: they pace the first
prompts, until the headers say what is left; each prompt costs its estimated tokens,
``fanout.http._tokens``); records go
to the durable journal as soon as order allows, so ``--resume`` after a crash sends only
what is missing; and the end is ``fanout http``'s (summary, exit codes, how to resume).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import NoReturn

import click

import fanout
from fanout._journal import Journal, Scan, open_journal
from fanout.cli._batch import (
    Requests,
    before_the_run,
    parse_concurrency,
    pool_size,
    readable_input,
    run_and_finish,
    write_records,
)
from fanout.cli._util import (
    RunStop,
    Signals,
    check_output_paths,
    die,
    open_input,
    output_errors,
    refuse_same_file,
    skip_bom,
)
from fanout.http._chat import APIS, RETRY_STATUSES, ChatApi, ChatClient, ChatSettings
from fanout.http._chat_input import FORMATS, PromptLines, detect_format
from fanout.http._chat_record import ChatRecordMaker
from fanout.http._client import HttpClient, is_retryable
from fanout.http._proxy import Proxies, ProxyError
from fanout.http._ratelimit import default_estimator, request_tokens
from fanout.http._redact import secret_parts
from fanout.http._spec import (
    Checked,
    Context,
    InputError,
    SpecError,
    check_base_url,
    join_url,
    validate,
)
from fanout.http._summary import Summary

DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class _Settings:
    """The options of one run, checked."""

    source: str
    label: str
    output: str
    chat: ChatSettings
    input_format: str
    concurrency: int | str
    #: --rpm and --tpm: the API's limits, known in advance
    limits: dict[str, str]
    timeout: float
    retries: int
    unordered: bool
    resume: bool
    retry_failed: bool
    summary_json: str | None
    progress: bool | None
    proxies: Proxies


@click.command("chat")
@click.argument("prompts", metavar="PROMPTS")
@click.option("-o", "--output", default="-", show_default=True, metavar="ANSWERS.jsonl",
              help="Where to write one JSON record per prompt ('-': standard output).")
@click.option("--model", required=True, help="The model to ask, e.g. gpt-4o-mini.")
@click.option("--api", "api_name", type=click.Choice(list(APIS)), default="openai",
              show_default=True,
              help="openai: chat completions (and every OpenAI-compatible server); "
                   "anthropic: the Messages API.")
@click.option("--system", default=None, metavar="TEXT",
              help="A system prompt for every prompt that has none of its own.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, metavar="N",
              help="The longest answer, in tokens (sent as max_tokens; --api anthropic: "
                   "1024 unless given).")
@click.option("--temperature", type=click.FloatRange(min=0), default=None, metavar="T",
              help="Sampling temperature (OpenAI 0-2, Anthropic 0-1).")
@click.option("--base-url", default=None, metavar="URL",
              help="The API's address (a base ending in /v1 works too). Default: "
                   "$OPENAI_BASE_URL, else https://api.openai.com; --api anthropic: "
                   "$ANTHROPIC_BASE_URL, else https://api.anthropic.com.")
@click.option("--api-key-env", default=None, metavar="NAME",
              help="The environment variable holding the API key (default OPENAI_API_KEY; "
                   "--api anthropic: ANTHROPIC_API_KEY). The key is never written anywhere.")
@click.option("-c", "--concurrency", default="100", callback=parse_concurrency,
              metavar="N|auto[:N]", show_default=True,
              help="Prompts in flight at once; auto: find it from the latency, up to 100.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, metavar="N",
              help="The API's requests-per-minute limit (your account's): prompts are paced "
                   "to it from the first one, until the API's rate-limit headers say what "
                   "is left.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, metavar="N",
              help="The API's tokens-per-minute limit: the same, each prompt counting its "
                   "estimated tokens (prompt characters / 4 + max tokens) as the API's "
                   "limiter does.")
@click.option("--retries", type=click.IntRange(min=0), default=DEFAULT_RETRIES,
              show_default=True,
              help="Extra attempts after 429s, 5xx, 408, 409, timeouts and connection "
                   "errors (the server's Retry-After, else exponential backoff with jitter).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT,
              show_default=True, help="Seconds per attempt, in total (as the SDKs: 10 minutes).")
@click.option("--format", "input_format", type=click.Choice(["auto", *FORMATS]),
              default="auto", show_default=True,
              help="PROMPTS is text (one prompt a line) or JSONL ({\"id\", \"prompt\"} or "
                   "{\"id\", \"messages\"}); auto: JSONL when the first line starts with {.")
@click.option("--unordered", is_flag=True,
              help="Write records as answers come instead of in input order.")
@click.option("--resume", is_flag=True,
              help="Skip prompts whose id is already in the output (repairs a torn last line).")
@click.option("--retry-failed", is_flag=True,
              help="With --resume: ask the prompts whose record failed again.")
@click.option("--summary-json", default=None, metavar="FILE",
              help="Also write the summary as JSON to FILE.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal).")
def chat_command(
    prompts: str,
    output: str,
    model: str,
    api_name: str,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    base_url: str | None,
    api_key_env: str | None,
    concurrency: int | str,
    rpm: int | None,
    tpm: int | None,
    retries: int,
    timeout: float,
    input_format: str,
    unordered: bool,
    resume: bool,
    retry_failed: bool,
    summary_json: str | None,
    progress: bool | None,
) -> None:
    """Send every prompt of PROMPTS ('-' for standard input) to a chat API; write one
    JSON record per prompt to ANSWERS.jsonl.

    \b
    PROMPTS is a text file, one prompt a line (its id: the line number), or JSONL:
      {"id": "q1", "prompt": "What is 2+2?"}
      {"id": "q2", "messages": [{"role": "user", "content": "Hi"}]}
    Each record: {"id", "prompt", "answer", "finish_reason", "usage", "ok",
    "error", "status", "attempts", "elapsed_ms"}.

    \b
    429s and 5xx are retried (--retries 5): the server's Retry-After is honoured
    and the whole run slows down; the API's rate-limit headers are followed.
    Ctrl-C keeps every answer written; rerun with --resume to ask the rest.

    \b
    Exit codes: 0 all answered; 1 some failed (all recorded); 2 bad usage or input
    (nothing sent); 74 output not writable; 130/143 interrupted (rerun with --resume).
    """
    if retry_failed and not resume:
        die("--retry-failed needs --resume")
    if resume and output == "-":
        die("--resume needs an output file (-o ANSWERS.jsonl)")
    api = APIS[api_name]
    if temperature is not None and temperature > api.max_temperature:
        die(f"--temperature must be between 0 and {api.max_temperature:g} for the "
            f"{api.title} API (got {temperature:g})")
    if not model.strip():
        die("--model must name a model, e.g. gpt-4o-mini")
    label = "<stdin>" if prompts == "-" else prompts
    try:
        proxies = Proxies.from_settings(None)
        settings = _chat_settings(api, model, system, max_tokens, temperature, base_url,
                                  api_key_env)
    except (SpecError, ProxyError) as exc:
        die(str(exc))
    check_output_paths(output, summary_json)
    refuse_same_file(prompts, output, summary_json)

    signals = Signals()
    with contextlib.ExitStack() as stack:
        with before_the_run(signals):
            opts = _Settings(
                source=stack.enter_context(readable_input(prompts)), label=label,
                output=output, chat=settings,
                input_format=input_format, concurrency=concurrency,
                limits={name: f"{n}/min" for name, n in (("requests", rpm),
                                                         ("tokens", tpm)) if n is not None},
                timeout=timeout,
                retries=retries, unordered=unordered, resume=resume,
                retry_failed=retry_failed, summary_json=summary_json, progress=progress,
                proxies=proxies,
            )
            started = time.perf_counter()
            lines, ctx, checked = _check_prompts(opts)
            journal, found = _open_output(opts)
        _run(opts, lines, ctx, checked, journal, found, started)


def _chat_settings(api: ChatApi, model: str, system: str | None, max_tokens: int | None,
                   temperature: float | None, base_url: str | None,
                   key_env: str | None) -> ChatSettings:
    """Where prompts go and with which key; ``SpecError`` names a bad setting."""
    if base_url is not None:
        check_base_url(base_url, "--base-url")
    else:
        base_url = os.environ.get(api.base_env) or api.base_url
        check_base_url(base_url, api.base_env)
    name = key_env or api.key_env
    key = os.environ.get(name) or None
    if key is None:
        if key_env is not None:
            raise SpecError(f"--api-key-env {key_env}: environment variable {key_env} is "
                            "not set")
        if base_url.rstrip("/").removesuffix("/v1") == api.base_url:
            raise SpecError(f"{name} is not set: export your {api.title} API key in it, or "
                            "name the variable that holds it with --api-key-env")
    elif "\r" in key or "\n" in key:
        raise SpecError(f"the API key in {name} has a line break: set it without one")
    headers = api.key_headers(key)
    holding = {header: value for header, value in headers.items() if key and key in value}
    secrets = tuple(part for value in holding.values() for part in secret_parts(value))
    sensitive = frozenset(header.lower() for header in holding)
    return ChatSettings(
        api=api, url=join_url(base_url, api.path), model=model, headers=headers,
        sensitive=sensitive, secrets=secrets, system=system,
        max_tokens=max_tokens if max_tokens is not None else api.default_max_tokens,
        temperature=temperature,
    )


def _check_prompts(opts: _Settings) -> tuple[PromptLines, Context, Checked]:
    """Tell the format of the prompts and check every line (exit 2 at a bad one)."""
    ctx = Context(opts.label, secrets=opts.chat.secrets)
    with open_input(opts.source, what="prompts", label=opts.label, binary=True) as handle:
        fmt, detected_on = opts.input_format, None
        if fmt == "auto":
            fmt, line = detect_format(handle)
            detected_on = line if fmt == "jsonl" else None
            handle.seek(0)
        skip_bom(handle)
        lines = PromptLines(opts.chat, fmt, detected_on)
        try:
            checked = validate(handle, ctx, skip_invalid=False, parse=lines)
        except InputError as exc:
            die(str(exc))
    if checked.count == 0:
        die(f"{opts.label}: no prompts in it (every line is blank)")
    return lines, ctx, checked


def _open_output(opts: _Settings) -> tuple[Journal, Scan]:
    with output_errors():
        return open_journal(opts.output, resume=opts.resume, drop_failed=opts.retry_failed,
                            key="id")


def _run(opts: _Settings, lines: PromptLines, ctx: Context, checked: Checked,
         journal: Journal, found: Scan, started: float) -> NoReturn:
    todo = checked.left(found.done)
    items = Requests(opts.source, ctx, checked, found.done, todo, lines)
    summary = Summary(requests=checked.count, skipped=checked.count - todo,
                      kept_failed=len(found.failed), noun="prompt")
    http = HttpClient(concurrency=pool_size(opts.concurrency), retry_statuses=RETRY_STATUSES,
                      proxies=opts.proxies)
    chat = ChatClient(http, opts.chat.api)

    async def send(stop: RunStop) -> None:
        batches = fanout.aimap_batches(
            chat, items, mode="async", concurrency=opts.concurrency, ordered=not opts.unordered,
            timeout=opts.timeout, retries=opts.retries, retry_on=is_retryable,
            cost=request_tokens(default_estimator), server_limits=opts.limits or None,
            progress=opts.progress, progress_details=chat.tokens_per_minute(), stop=stop.event,
        )
        await write_records(batches, ChatRecordMaker().line, journal, summary, stop, http)

    run_and_finish(send, todo=todo, journal=journal, found=found, summary=summary,
                   output=opts.output, summary_json=opts.summary_json, started=started)
