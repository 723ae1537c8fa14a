"""``fanout http INPUT.jsonl -o OUTPUT.jsonl``: send a batch of requests, safely.

The run is the core's: ``fanout.aimap`` drives one ``HttpClient`` call per
request with the concurrency, rate, retries, timeout, ordering and progress
asked for. This module validates the input first (nothing is sent before every
line is known good), writes each record as soon as order allows, and turns
signals and a failing output file into a clean stop with a summary.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, replace
from typing import NoReturn

import click

import fanout
from fanout._journal import (
    CorruptJournal,
    Journal,
    Scan,
    drop_records,
    open_journal,
)
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
    load_function,
    open_input,
    output_errors,
    refuse_same_file,
    skip_bom,
)
from fanout.http._client import HttpClient, is_retryable
from fanout.http._proxy import Proxies, ProxyError
from fanout.http._ratelimit import Estimator, default_estimator, request_tokens
from fanout.http._record import (
    BatchRecordMaker,
    RecordMaker,
    batch_failures,
    holds_batch_lines,
)
from fanout.http._spec import (
    FORMATS,
    Checked,
    Context,
    InputError,
    SpecError,
    check_base_url,
    detect_format,
    for_format,
    make_context,
    validate,
)
from fanout.http._summary import Summary

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_retry_on(text: str) -> frozenset[int]:
    """``"429,500-504"`` or ``"429,5xx"`` -> the statuses; ``"none"`` -> no status."""
    if text.strip().lower() in ("", "none"):
        return frozenset()
    codes: set[int] = set()
    for part in text.split(","):
        token = part.strip().lower()
        try:
            if re.fullmatch(r"[1-5]xx", token):
                base = int(token[0]) * 100
                codes.update(range(base, base + 100))
            elif "-" in token:
                low, high = (int(x) for x in token.split("-", 1))
                if not 100 <= low <= high <= 599:
                    raise ValueError
                codes.update(range(low, high + 1))
            else:
                code = int(token)
                if not 100 <= code <= 599:
                    raise ValueError
                codes.add(code)
        except ValueError:
            raise click.BadParameter(
                f"expected status codes like 429,500-504 or 5xx (got {part.strip()!r})",
                param_hint="'--retry-on'",
            ) from None
    return frozenset(codes)


def parse_size(text: str | None) -> int | None:
    """``"65536"``, ``"64k"``, ``"1MB"`` -> bytes."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if match is None:
        raise click.BadParameter(
            f"expected a size in bytes like 65536, 64k or 1M (got {text!r})",
            param_hint="'--max-body'",
        )
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


@dataclass(frozen=True)
class _Settings:
    """Everything one run needs, checked."""

    source: str
    label: str
    output: str
    ctx: Context
    statuses: frozenset[int]
    max_body: int | None
    concurrency: int | str
    rate: str | None
    budget: str | None
    estimator: Estimator
    timeout: float
    retries: int
    max_retry_after: float
    unordered: bool
    include_headers: bool
    resume: bool
    retry_failed: bool
    skip_invalid: bool
    summary_json: str | None
    progress: bool | None
    insecure: bool
    proxies: Proxies
    #: ``auto``, ``fanout`` or ``openai`` (``ctx.format`` is the one in use)
    input_format: str
    base_url: str | None


@click.command("http")
@click.argument("input_path", metavar="INPUT.jsonl")
@click.option("-o", "--output", default="-", show_default=True, metavar="OUTPUT.jsonl",
              help="Where to write one JSON record per request ('-': standard output).")
@click.option("-c", "--concurrency", default="100", callback=parse_concurrency,
              metavar="N|auto[:N]",
              show_default=True,
              help="Requests in flight at once (also the pool size); auto: find it from the "
                   "latency, up to 100 (auto:N: up to N).")
@click.option("--rate", default=None, metavar="N/PERIOD",
              help="At most this many request starts per period, retries included, "
                   "e.g. 20/s or 600/min.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, metavar="N",
              help="Requests per minute: the same as --rate N/min.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, metavar="N",
              help="Tokens per minute: pace the starts by each request's estimated tokens "
                   "(prompt characters / 4 + max_tokens x n), retries included.")
@click.option("--token-estimator", default=None, metavar="MODULE:FUNCTION",
              help="Estimate a request's tokens with FUNCTION(body, url) -> number instead.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Seconds per attempt, in total: connect, send, headers and body.")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra attempts after connection errors, timeouts and --retry-on statuses "
                   "(exponential backoff with full jitter).")
@click.option("--retry-on", default="429,500,502,503,504", show_default=True,
              metavar="STATUSES", help="Statuses worth a retry: 429,500-504 or 5xx, or none.")
@click.option("--max-retry-after", type=click.FloatRange(min=0), default=120.0,
              show_default=True,
              help="Longest Retry-After (s) honoured; beyond it the request fails at once.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="A header for every request; ${VAR} is read from the environment.")
@click.option("--unordered", is_flag=True,
              help="Write records as requests finish instead of in input order.")
@click.option("--include-headers", is_flag=True,
              help="Keep the response headers in each record (secrets redacted).")
@click.option("--max-body", default=None, metavar="BYTES",
              help="Keep at most this much of each body (e.g. 65536, 64k, 1M).")
@click.option("--resume", is_flag=True,
              help="Skip requests whose id is already in OUTPUT (repairs a torn last line).")
@click.option("--retry-failed", is_flag=True,
              help="With --resume: redo the requests whose record failed.")
@click.option("--skip-invalid", is_flag=True,
              help="Record invalid input lines as failed and send the rest.")
@click.option("--summary-json", default=None, metavar="FILE",
              help="Also write the summary as JSON to FILE.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--proxy", default=None, metavar="URL",
              help="Send every request through this proxy, http://[user:pass@]host:port "
                   "('' for none). Default: HTTPS_PROXY/HTTP_PROXY/ALL_PROXY from the "
                   "environment; NO_PROXY applies to both.")
@click.option("--format", "input_format", type=click.Choice(["auto", *FORMATS]),
              default="auto", show_default=True,
              help="Line format of INPUT and OUTPUT: fanout's, or the OpenAI Batch API's "
                   "(auto: told from the first line).")
@click.option("--base-url", default=None, metavar="URL",
              help="Resolve relative URLs (/v1/chat/completions) against this. OpenAI "
                   "Batch input: default $OPENAI_BASE_URL, else https://api.openai.com.")
def http_command(
    input_path: str,
    output: str,
    concurrency: int | str,
    rate: str | None,
    rpm: int | None,
    tpm: int | None,
    token_estimator: str | None,
    timeout: float,
    retries: int,
    retry_on: str,
    max_retry_after: float,
    headers: tuple[str, ...],
    unordered: bool,
    include_headers: bool,
    max_body: str | None,
    resume: bool,
    retry_failed: bool,
    skip_invalid: bool,
    summary_json: str | None,
    progress: bool | None,
    insecure: bool,
    proxy: str | None,
    input_format: str,
    base_url: str | None,
) -> None:
    """Send one HTTP request per line of INPUT.jsonl ('-' for standard input); write one
    JSON record per request to OUTPUT.jsonl.

    \b
    A line is a JSON object
      {"id": "q1", "method": "POST", "url": "https://...", "headers": {...},
       "params": {...}, "json": {...}}      ("data" for a raw body)
    or a JSON string or a plain URL (a GET). "id" defaults to the line number.
    Header values, the URL and "params" values may use ${VAR} from the environment;
    those values are never written out.

    \b
    An OpenAI Batch input file works as it is:
      {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
       "body": {...}}
    and then each output line is a Batch output line:
      {"id": "batch_req_...", "custom_id": "r1", "response": {"status_code": 200,
       "request_id": "...", "body": {...}}, "error": null}
    ("response": null and "error": {"code", "message"} when no answer came).
    Authorization: Bearer ${OPENAI_API_KEY} is sent when that variable is set and
    no -H Authorization is given. --resume goes by "custom_id".

    \b
    Exit codes: 0 all succeeded; 1 some failed (all recorded); 2 bad usage or input
    (nothing sent); 74 output not writable; 130/143 interrupted (rerun with --resume).
    """
    statuses = parse_retry_on(retry_on)
    body_cap = parse_size(max_body)
    if retry_failed and not resume:
        die("--retry-failed needs --resume")
    if resume and output == "-":
        die("--resume needs an output file (-o OUTPUT.jsonl)")
    if rpm is not None:
        if rate is not None:
            die("--rpm and --rate both set the request rate: give one of them")
        rate = f"{rpm}/min"
    if rate is not None:
        try:
            from fanout._limits import parse_rate

            parse_rate(rate, name="--rate")
        except fanout.ConfigError as exc:
            die(str(exc))
    estimator: Estimator = default_estimator
    if token_estimator is not None:
        loaded = load_function(token_estimator)
        if not callable(loaded):
            die(f"--token-estimator {token_estimator}: not a function")
        estimator = loaded
    label = "<stdin>" if input_path == "-" else input_path
    try:
        proxies = Proxies.from_settings(proxy)
        if base_url is not None:
            check_base_url(base_url, "--base-url")
        ctx = make_context(label, list(headers), os.environ, proxies.secrets)
    except (SpecError, ProxyError) as exc:
        die(str(exc))
    check_output_paths(output, summary_json)
    refuse_same_file(input_path, output, summary_json)

    signals = Signals()
    with contextlib.ExitStack() as stack:
        with before_the_run(signals):
            opts = _Settings(
                source=stack.enter_context(readable_input(input_path)), label=label,
                output=output, ctx=ctx,
                statuses=statuses, max_body=body_cap, concurrency=concurrency, rate=rate,
                budget=f"{tpm}/min" if tpm is not None else None, estimator=estimator,
                timeout=timeout, retries=retries, max_retry_after=max_retry_after,
                unordered=unordered, include_headers=include_headers, resume=resume,
                retry_failed=retry_failed, skip_invalid=skip_invalid,
                summary_json=summary_json, progress=progress, insecure=insecure,
                proxies=proxies, input_format=input_format, base_url=base_url,
            )
            started = time.perf_counter()
            opts, checked, journal, found = _prepare(opts)
        _run(opts, checked, journal, found, started)


def _prepare(opts: _Settings) -> tuple[_Settings, Checked, Journal, Scan]:
    """Tell the input's format and validate it, then open (and on --resume repair)
    the output; the settings come back with the context for that format."""
    with open_input(opts.source, label=opts.label, binary=True) as handle:
        fmt, line = opts.input_format, None
        if fmt == "auto":
            fmt, line = detect_format(handle)
            handle.seek(0)
        try:
            opts = replace(opts, ctx=for_format(opts.ctx, fmt, line, opts.base_url))
        except SpecError as exc:
            die(str(exc))
        if fmt == "openai" and opts.include_headers:
            given = "--format openai" if line is None else f"{opts.label} (an OpenAI Batch input)"
            die(f"--include-headers: the OpenAI Batch output of {given} has no headers field")
        skip_bom(handle)
        try:
            checked = validate(handle, opts.ctx, skip_invalid=opts.skip_invalid)
        except InputError as exc:
            die(str(exc))
    with output_errors():
        journal, found = _open_output(opts)
    return opts, checked, journal, found


def _open_output(opts: _Settings) -> tuple[Journal, Scan]:
    """``open_journal`` keyed on the format's id field (``custom_id`` for Batch output)."""
    key = opts.ctx.id_field
    if opts.ctx.format != "openai" or not opts.resume:
        if opts.resume and holds_batch_lines(opts.output):
            raise CorruptJournal(opts.output, "holds OpenAI Batch output lines; resume it "
                                 "with its Batch input, or write to another output file")
        return open_journal(opts.output, resume=opts.resume, drop_failed=opts.retry_failed,
                            key=key)
    # a Batch output line has no "ok": which records failed is read from their status
    failed = batch_failures(opts.output)
    if failed and opts.retry_failed:
        drop_records(opts.output, failed, key)
        failed = set()
    journal, found = open_journal(opts.output, resume=True, key=key)
    found.failed = failed & found.done
    return journal, found


def _run(opts: _Settings, checked: Checked, journal: Journal, found: Scan,
         started: float) -> NoReturn:
    todo = checked.left(found.done)
    items = Requests(opts.source, opts.ctx, checked, found.done, todo)
    summary = Summary(requests=checked.count, skipped=checked.count - todo,
                      kept_failed=len(found.failed))
    client = HttpClient(concurrency=pool_size(opts.concurrency),
                        retry_statuses=opts.statuses, max_body=opts.max_body,
                        include_headers=opts.include_headers, verify_tls=not opts.insecure,
                        proxies=opts.proxies, request_ids=opts.ctx.format == "openai")
    maker = (BatchRecordMaker() if opts.ctx.format == "openai"
             else RecordMaker(include_headers=opts.include_headers))

    async def send(stop: RunStop) -> None:
        # Result batches as they finish: one iteration step per burst, not per request.
        batches = fanout.aimap_batches(
            client, items, mode="async", concurrency=opts.concurrency,
            ordered=not opts.unordered, timeout=opts.timeout, retries=opts.retries,
            retry_on=is_retryable, rate=opts.rate, budget=opts.budget,
            cost=request_tokens(opts.estimator), progress=opts.progress,
            max_retry_after=opts.max_retry_after, stop=stop.event,
        )
        await write_records(batches, maker.line, journal, summary, stop, client)

    run_and_finish(send, todo=todo, journal=journal, found=found, summary=summary,
                   output=opts.output, summary_json=opts.summary_json, started=started)
