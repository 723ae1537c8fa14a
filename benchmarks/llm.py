"""1,000 prompts against a chat API's rate limits: fanout chat, fanout http and the usual
AsyncOpenAI + Semaphore + gather, each against the theoretical minimum.

The mock server runs in a process of its own (``MockServer.spawn``) with OpenAI-style
requests- and tokens-per-minute buckets (``rpm``, ``tpm``: each request reserves its
prompt's estimated tokens plus ``max_tokens`` when it arrives; 429 with ``retry-after``
when it does not fit; ``x-ratelimit-*`` headers on every answer) and 50 ms of latency.
Each client runs in a fresh process, 64 prompts at once:

chat-given     ``fanout chat --rpm R --tpm T``: the API's limits, as on the account's page
chat-nothing   ``fanout chat``: only what the API's headers and 429s say
http-nothing   ``fanout http`` on an OpenAI Batch input file: the headers and 429s
http-given     the same with ``--rpm R --tpm T``, which for ``fanout http`` are ceilings paced
               evenly from the first request (``rate=``, ``budget=``): on buckets a minute deep
               that takes total / limit (7x the minimum here), so it runs only on the 1 s
               buckets unless ``--slow``
sdk-gather     the hand-written loop: ``asyncio.Semaphore(64)`` around
               ``client.chat.completions.create``, ``asyncio.gather(...,
               return_exceptions=True)``, the SDK's own retries (2, its default)

Four cases: tokens bind or requests bind, with buckets a minute deep (OpenAI's nominal
bucket: the first minute's worth may go at once) or one second deep (a limit "quantized"
to the second). The limits of each case are set so that the theoretical minimum is about
``--seconds`` (10): the buckets start full, the rest flows in at the limit's rate, then one
answer's latency:

    minimum = max over requests and tokens of (total - bucket) / (limit / 60 s) + latency

Every figure: wall time / minimum, 429s the server sent (per prompt), and whether every
prompt was answered exactly once (every id once in the output with its answer, and as many
200s at the server as prompts).

    python benchmarks/llm.py                  # 4 cases x 5 clients, ~3 minutes on 2 cores
    python benchmarks/llm.py --quick          # 300 prompts, ~5 s each
    python benchmarks/llm.py --only tokens-60s --repeat 3
"""

from __future__ import annotations

import os
import sys

# this folder holds http.py, which would shadow the standard library's http package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from fanout.http._tokens import estimate_tokens  # noqa: E402
from fanout.mock import MockServer  # noqa: E402

LATENCY = 0.05
CONCURRENCY = 64
MAX_TOKENS = 145
MODEL = "mock-1"
KEY = "sk-bench-0123456789abcdef"
CLIENTS = ("chat-given", "chat-nothing", "http-nothing", "http-given", "sdk-gather")
LABELS = {
    "chat-given": "fanout chat --rpm --tpm",
    "chat-nothing": "fanout chat",
    "http-nothing": "fanout http, Batch file",
    "http-given": "fanout http, Batch file, --rpm --tpm",
    "sdk-gather": "AsyncOpenAI + Semaphore + gather",
}
CASES = ("tokens-60s", "tokens-1s", "requests-60s", "requests-1s")


def prompt(i: int) -> str:
    return f"What is {i}+{i + 1}+3=___ ?"


def body(i: int) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": prompt(i)}]}


@dataclass(frozen=True)
class Case:
    """The server's limits for one case, and the theoretical minimum they allow."""

    name: str
    rpm: int
    tpm: int
    bucket: float
    minimum: float
    #: what a client pacing evenly at the limits from the first request needs
    paced: float


def make_case(name: str, n: int, seconds: float) -> Case:
    """Limits under which ``n`` prompts need ``seconds`` at least, the named resource
    binding (the other one three times looser)."""
    bound, depth = name.split("-")
    bucket = float(depth.removesuffix("s"))
    tokens = sum(estimate_tokens(body(i)) for i in range(n))

    def per_minute(total: float) -> int:
        # (total - L * bucket / 60) / (L / 60) = seconds  =>  L = 60 total / (seconds + bucket)
        return int(60 * total / (seconds + bucket))

    rpm, tpm = per_minute(n), per_minute(tokens)
    if bound == "tokens":
        rpm *= 3
    else:
        tpm *= 3
    paced = max(tokens / (tpm / 60), n / (rpm / 60)) + LATENCY
    return Case(name, rpm, tpm, bucket, minimum(n, tokens, rpm, tpm, bucket), paced)


def minimum(n: int, tokens: int, rpm: int, tpm: int, bucket: float) -> float:
    """The buckets start full; the rest flows in at the limits' rates; then one answer."""
    need = max(0.0, (tokens - tpm * bucket / 60) / (tpm / 60),
               (n - max(rpm * bucket / 60, 1)) / (rpm / 60))
    return need + LATENCY


# ------------------------------------------------------------------ the clients
def run_fanout(command: list[str], tmp: Path, out: Path) -> dict[str, Any]:
    summary = tmp / "summary.json"
    for stale in (out, summary):
        stale.unlink(missing_ok=True)
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    proc = subprocess.run([sys.executable, "-m", "fanout", *command, "-o", str(out),
                           "--summary-json", str(summary), "--no-progress"],
                          capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"fanout exited {proc.returncode}: {proc.stderr[-800:]}")
    document = json.loads(summary.read_text())
    # the command's own wall time: from its start (imports done) to the last record
    return {"wall": document["wall_time"], "summary": document,
            "records": [json.loads(line) for line in out.read_text().splitlines()]}


def chat_client(url: str, n: int, case: Case, tmp: Path, given: bool) -> dict[str, Any]:
    prompts = tmp / "prompts.txt"
    prompts.write_text("".join(prompt(i) + "\n" for i in range(n)))
    limits = ["--rpm", str(case.rpm), "--tpm", str(case.tpm)] if given else []
    done = run_fanout(["chat", str(prompts), "--model", MODEL, "--base-url", url,
                       "--max-tokens", str(MAX_TOKENS), "-c", str(CONCURRENCY), *limits],
                      tmp, tmp / "answers.jsonl")
    answers = {r["id"]: r for r in done["records"]}
    right = (len(done["records"]) == n and len(answers) == n
             and all(answers[i + 1]["ok"] and answers[i + 1]["answer"] == str(2 * i + 4)
                     for i in range(n)))
    return {"wall": done["wall"], "answered": sum(r["ok"] for r in done["records"]),
            "once": right}


def http_client(url: str, n: int, case: Case, tmp: Path, given: bool) -> dict[str, Any]:
    batch = tmp / "batch.jsonl"
    batch.write_text("".join(json.dumps({"custom_id": f"p{i}", "method": "POST",
                                         "url": "/v1/chat/completions", "body": body(i)}) + "\n"
                             for i in range(n)))
    limits = ["--rpm", str(case.rpm), "--tpm", str(case.tpm)] if given else []
    done = run_fanout(["http", str(batch), "--base-url", url, "-c", str(CONCURRENCY),
                       "--retries", "5", "--timeout", "600", *limits], tmp,
                      tmp / "batch_out.jsonl")
    records = {r["custom_id"]: r for r in done["records"]}
    ok = {k for k, r in records.items() if r["response"] and r["response"]["status_code"] == 200}
    right = len(done["records"]) == n and all(
        f"p{i}" in ok and records[f"p{i}"]["response"]["body"]["choices"][0]["message"]["content"]
        == str(2 * i + 4) for i in range(n))
    return {"wall": done["wall"], "answered": len(ok), "once": right}


def sdk_client(url: str, n: int, tmp: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", url, str(n)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"the SDK client failed: {proc.stderr[-800:]}")
    done = json.loads(proc.stdout)
    right = [a == str(2 * i + 4) for i, a in enumerate(done["answers"])]
    return {"wall": done["wall"], "answered": sum(right), "once": all(right)}


def child(url: str, n: int) -> None:
    """The hand-written client: what the SDK's README and most scripts do."""
    import openai

    async def main() -> list[Any]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def ask(i: int) -> str | None:
            async with limit:
                answer = await client.chat.completions.create(**body(i))
                return answer.choices[0].message.content

        try:
            return await asyncio.gather(*(ask(i) for i in range(n)), return_exceptions=True)
        finally:
            await client.close()

    began = time.perf_counter()  # like fanout's wall_time: imports done
    results = asyncio.run(main())
    wall = time.perf_counter() - began
    print(json.dumps({"wall": wall,
                      "answers": [r if isinstance(r, str) else None for r in results]}))


# ------------------------------------------------------------------ main
def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def measure(case: Case, client: str, n: int, tmp: Path) -> dict[str, Any]:
    with MockServer.spawn(rpm=case.rpm, tpm=case.tpm, bucket=case.bucket,
                          latency=LATENCY) as server:
        if client == "sdk-gather":
            got = sdk_client(server.url, n, tmp)
        elif client.startswith("http"):
            got = http_client(server.url, n, case, tmp, given=client == "http-given")
        else:
            got = chat_client(server.url, n, case, tmp, given=client == "chat-given")
        stats = server.stats()
    got["429s"] = stats["rate_limited"]
    got["once"] = got["once"] and stats["by_status"].get("200", 0) == n
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="the theoretical minimum each case's limits allow")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median shown)")
    parser.add_argument("--quick", action="store_true", help="300 prompts, 5 s cases")
    parser.add_argument("--only", action="append", choices=CASES, help="repeatable")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help=f"comma-separated, of: {', '.join(CLIENTS)}")
    parser.add_argument("--slow", action="store_true",
                        help="also run fanout http --rpm --tpm on the minute-deep buckets")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    n, seconds = (300, 5.0) if args.quick else (args.prompts, args.seconds)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    print(f"{n} prompts, {CONCURRENCY} at once, {LATENCY * 1000:.0f} ms latency, "
          f"max_tokens {MAX_TOKENS}; {load()}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fanout-llm-") as folder:
        tmp = Path(folder)
        for name in CASES:
            if args.only and name not in args.only:
                continue
            case = make_case(name, n, seconds)
            print(f"\n{name}: rpm {case.rpm:,}, tpm {case.tpm:,}, buckets {case.bucket:g} s "
                  f"deep; theoretical minimum {case.minimum:.2f} s", flush=True)
            for client in clients:
                if client == "http-given" and case.bucket > 1 and not args.slow:
                    print(f"  {LABELS[client]:<38} skipped: its even pace needs "
                          f"{case.paced:.0f} s here, {case.paced / case.minimum:.1f}x "
                          "(--slow runs it)", flush=True)
                    continue
                runs = [measure(case, client, n, tmp) for _ in range(args.repeat)]
                ratios = [r["wall"] / case.minimum for r in runs]
                ratio = statistics.median(ratios)
                spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(runs) > 1 else ""
                shed = statistics.median(r["429s"] for r in runs)
                answered = min(r["answered"] for r in runs)
                once = all(r["once"] for r in runs)
                target, met = _target(client, ratio, shed / n, once)
                print(f"  {LABELS[client]:<38} {ratio:5.2f}x{spread}  {shed:5.0f} 429s "
                      f"({shed / n:5.1%})  {answered:4d}/{n} answered, exactly once: "
                      f"{'yes' if once else 'NO '}  {target} {met}", flush=True)
                rows.append({"case": name, "client": client, "rpm": case.rpm, "tpm": case.tpm,
                             "bucket": case.bucket, "minimum": case.minimum, "runs": runs})
    print(f"\ntotal {time.perf_counter() - started:.0f} s, {load()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _target(client: str, ratio: float, shed: float, once: bool) -> tuple[str, str]:
    """The brief's targets: limits given <= 1.03x with <= 1% 429s; nothing given <= 1.05x;
    every prompt answered exactly once in every case (the peer is held to nothing)."""
    if client == "sdk-gather":
        return "(peer)", ""
    if client == "http-given":
        return "(ceilings, paced evenly)", "once" if once else "NOT once"
    if client.endswith("nothing"):
        ok = ratio <= 1.05 and once
        return "target <=1.05x, once", "met" if ok else "NOT MET"
    ok = ratio <= 1.03 and shed <= 0.01 and once
    return "target <=1.03x, <=1% 429s, once", "met" if ok else "NOT MET"


if __name__ == "__main__":
    main()
