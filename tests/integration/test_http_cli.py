"""``fanout http`` against the mock server, in process: records, order, retries, limits,
timeouts, redaction, redirects and every bad-input case."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from fanout.cli._http import http_command
from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]
SECRET = "sk-live-0123456789abcdef"


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def run(args: list[str], *, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(http_command, args, env=env, input=stdin, catch_exceptions=False)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """fanout http honours HTTP(S)_PROXY: requests to the loopback servers here go direct."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "req.jsonl", tmp_path / "out.jsonl"


# ---------------------------------------------------------------- records and order
def test_every_line_form_yields_one_record_in_input_order(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    url = mock_server.url
    tag = unique()
    write_lines(req, [
        {"id": "first", "url": f"{url}/delay/0.3"},
        f"{url}/todos/2",
        json.dumps(f"{url}/todos/3"),
        "",
        {"id": "post", "method": "POST", "url": f"{url}/echo", "params": {"tag": tag},
         "json": {"n": 1}},
        {"id": "raw", "method": "PUT", "url": f"{url}/echo", "data": "plain body"},
        {"id": "gone", "url": f"{url}/status/404"},
    ])
    result = run([str(req), "-o", str(out)])
    assert result.exit_code == 1, result.output
    recs = records(out)
    assert [r["id"] for r in recs] == ["first", 2, 3, "post", "raw", "gone"]
    assert [r["index"] for r in recs] == [0, 1, 2, 3, 4, 5]
    for r in recs:
        assert set(r) >= {"id", "index", "ok", "status", "error", "attempts", "elapsed_ms"}
    assert recs[1]["json"]["id"] == 2 and recs[1]["ok"] is True and recs[1]["error"] is None
    assert recs[3]["json"]["method"] == "POST" and recs[3]["json"]["json"] == {"n": 1}
    assert recs[3]["json"]["query"] == {"tag": tag}
    assert recs[4]["json"]["text"] == "plain body"
    gone = recs[5]
    assert gone["ok"] is False and gone["status"] == 404 and gone["attempts"] == 1
    assert gone["error"]["type"] == "HTTPStatusError" and "404" in gone["error"]["message"]
    assert "done: 6 requests" in result.stderr and "404: 1" in result.stderr


def test_unordered_writes_fast_requests_before_a_slow_first_one(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    write_lines(req, [{"id": "slow", "url": f"{mock_server.url}/delay/0.5"}]
                + [{"id": f"f{i}", "url": f"{mock_server.url}/todos/{i + 1}"} for i in range(5)])
    assert run([str(req), "-o", str(out), "--unordered"]).exit_code == 0
    ids = [r["id"] for r in records(out)]
    assert sorted(ids, key=str) == sorted(["slow", "f0", "f1", "f2", "f3", "f4"], key=str)
    assert ids[-1] == "slow"


def test_stdin_input_and_stdout_output(mock_server: MockServer) -> None:
    lines = f"{mock_server.url}/todos/1\n{mock_server.url}/todos/2\n"
    result = run(["-"], stdin=lines)
    assert result.exit_code == 0
    recs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["json"]["id"]) for r in recs] == [(1, 1), (2, 2)]


def test_max_body_caps_the_kept_body_and_include_headers(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    write_lines(req, [f"{mock_server.url}/todos/1"])
    assert run([str(req), "-o", str(out), "--max-body", "10", "--include-headers"]).exit_code == 0
    (rec,) = records(out)
    assert rec["truncated"] is True and len(rec["text"].encode()) == 10
    assert rec["headers"]["Content-Type"].startswith("application/json")


def test_summary_json(mock_server: MockServer, files: tuple[Path, Path], tmp_path: Path) -> None:
    req, out = files
    key = unique("flaky")
    write_lines(req, [f"{mock_server.url}/todos/1", f"{mock_server.url}/status/500",
                      f"{mock_server.url}/flaky/{key}?fail=1&code=503&retry_after=0"])
    summary = tmp_path / "summary.json"
    result = run([str(req), "-o", str(out), "--retries", "1", "--summary-json", str(summary)])
    assert result.exit_code == 1
    doc = json.loads(summary.read_text())
    assert doc["done"] == 3 and doc["ok"] == 2 and doc["failures"] == 1
    assert doc["by_status"] == {"200": 2, "500": 1}
    assert doc["retries"] == 2 and doc["exit_code"] == 1
    assert doc["throughput"] > 0 and doc["wall_time"] > 0
    assert doc["latency_ms"]["p50"] <= doc["latency_ms"]["p90"] <= doc["latency_ms"]["p99"]


# --------------------------------------------------------------------------- retries
def test_429_with_retry_after_is_retried_until_it_succeeds(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    key = unique("r429")
    write_lines(req, [{"id": key, "url": f"{mock_server.url}/flaky/{key}?fail=2&code=429"
                                         "&retry_after=0.05"}])
    assert run([str(req), "-o", str(out), "--retries", "3"]).exit_code == 0
    (rec,) = records(out)
    assert rec["ok"] is True and rec["attempts"] == 3 and rec["json"]["attempt"] == 3
    assert mock_server.stats()["by_id"][f"/flaky/{key}"] == 3


def test_retry_after_as_an_http_date_is_honoured(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    key = unique("date")
    write_lines(req, [f"{mock_server.url}/flaky/{key}?fail=1&code=503&retry_after=1"
                      "&retry_after_date=1"])
    assert run([str(req), "-o", str(out), "--retries", "1", "--max-retry-after", "30"]
               ).exit_code == 0
    (rec,) = records(out)
    assert rec["ok"] is True and rec["attempts"] == 2


def test_retry_after_beyond_the_cap_fails_at_once_with_the_reason(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    key = unique("cap")
    write_lines(req, [{"id": key, "url": f"{mock_server.url}/status/429?retry_after=300"
                                         f"&id={key}"}])
    result = run([str(req), "-o", str(out), "--retries", "5", "--max-retry-after", "10"])
    assert result.exit_code == 1
    (rec,) = records(out)
    assert rec["attempts"] == 1 and rec["status"] == 429
    assert "300" in rec["error"]["message"] and "max_retry_after" in rec["error"]["message"]
    assert mock_server.stats()["by_id"][key] == 1


def test_5xx_retried_4xx_final_and_retry_on_changes_the_set(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    url = mock_server.url
    k500, k404, k418 = unique("a"), unique("b"), unique("c")
    write_lines(req, [
        {"id": k500, "url": f"{url}/status/500?id={k500}"},
        {"id": k404, "url": f"{url}/status/404?id={k404}"},
        {"id": k418, "url": f"{url}/status/418?id={k418}"},
    ])
    assert run([str(req), "-o", str(out), "--retries", "2"]).exit_code == 1
    assert [r["attempts"] for r in records(out)] == [3, 1, 1]
    assert run([str(req), "-o", str(out), "--retries", "2", "--retry-on", "418"]).exit_code == 1
    assert [r["attempts"] for r in records(out)] == [1, 1, 3]
    by_id = mock_server.stats()["by_id"]
    assert (by_id[k500], by_id[k404], by_id[k418]) == (4, 2, 4)


def test_connection_resets_are_retried_for_every_method(
    make_mock_server: MakeServer, files: tuple[Path, Path]
) -> None:
    server = make_mock_server(reset_rate=0.4, seed=7)
    req, out = files
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    write_lines(req, [{"id": f"m{i}", "method": methods[i % 5], "url": f"{server.url}/echo",
                       "json": {"i": i}} for i in range(30)])
    result = run([str(req), "-o", str(out), "--retries", "20", "-c", "5"])
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert all(r["ok"] for r in recs) and len(recs) == 30
    assert server.stats()["resets"] > 0
    assert sum(r["attempts"] - 1 for r in recs) > 0


def test_connection_refused_is_an_error_record(files: tuple[Path, Path]) -> None:
    req, out = files
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_lines(req, [f"http://127.0.0.1:{port}/x"])
    assert run([str(req), "-o", str(out), "--retries", "1"]).exit_code == 1
    (rec,) = records(out)
    assert rec["status"] is None and rec["attempts"] == 2
    assert "Connect" in rec["error"]["type"] or "Connection" in rec["error"]["message"]


def test_429s_slow_the_whole_run_down(make_mock_server: MakeServer,
                                      files: tuple[Path, Path]) -> None:
    server = make_mock_server(rate_limit="40/s")
    req, out = files
    write_lines(req, [f"{server.url}/todos/{i % 200 + 1}" for i in range(120)])
    result = run([str(req), "-o", str(out), "--retries", "10", "-c", "40"])
    assert result.exit_code == 0, result.output
    stats = server.stats()
    assert all(r["ok"] for r in records(out))
    # without the shared back-off every 429 is retried alone, and the waste grows each
    # round; with it, 429s stay well under one per request
    assert stats["rate_limited"] < 120


# ----------------------------------------------------------------- rate and timeouts
def test_rate_is_respected_as_measured_by_the_server(files: tuple[Path, Path]) -> None:
    req, out = files
    # its own process: a server thread here would stamp arrivals late when the client
    # holds the GIL, squeezing them together
    with MockServer.spawn() as server:
        write_lines(req, [f"{server.url}/todos/{i + 1}" for i in range(45)])
        assert run([str(req), "-o", str(out), "--rate", "20/s", "-c", "20"]).exit_code == 0
        # starts are paced 3% under the limit; arrivals at the server also carry the
        # network's and the schedulers' jitter: up to 50 ms of it is allowed here
        stats = server.stats(window=0.95)
    assert stats["total"] == 45
    assert stats["max_in_window"] <= 20


def test_timeout_is_a_total_deadline_even_against_a_trickling_server(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    write_lines(req, [
        {"id": "trickle", "url": f"{mock_server.url}/trickle/20?interval=0.25"},
        {"id": "slow", "url": f"{mock_server.url}/delay/20"},
        {"id": "fine", "url": f"{mock_server.url}/todos/1"},
    ])
    assert run([str(req), "-o", str(out), "--timeout", "0.5", "--retries", "1"]).exit_code == 1
    trickle, slow, fine = records(out)
    for rec in (trickle, slow):
        assert rec["ok"] is False and rec["attempts"] == 2
        assert "Timeout" in rec["error"]["type"]
        # the trickle keeps the connection busy for 20 s; the deadline cuts it at 0.5 s
        assert rec["elapsed_ms"] < 5000
    assert fine["ok"] is True


# ------------------------------------------------------------------------- secrets
def test_secrets_never_reach_output_summary_or_stderr(
    mock_server: MockServer, files: tuple[Path, Path], tmp_path: Path
) -> None:
    req, out = files
    write_lines(req, [
        {"id": "env", "method": "POST", "url": f"{mock_server.url}/echo",
         "headers": {"Authorization": "Bearer ${API_KEY}", "X-Plain": "${TEAM_NAME}"},
         "json": {"note": "hello"}},
        {"id": "lit", "url": f"{mock_server.url}/echo",
         "headers": {"X-API-Key": "literal-key-42", "Cookie": "session=cookie-val-9"}},
        {"id": "bad", "url": f"{mock_server.url}/status/401"},
    ])
    summary = tmp_path / "s.json"
    env = {"API_KEY": SECRET, "TEAM_NAME": "team-secret-77"}
    result = run([str(req), "-o", str(out), "-H", "X-Auth-Token: ${API_KEY}",
                  "--include-headers", "--summary-json", str(summary)], env=env)
    assert result.exit_code == 1
    everything = out.read_text() + summary.read_text() + result.output
    for secret in (SECRET, "team-secret-77", "literal-key-42", "cookie-val-9"):
        assert secret not in everything
    env_rec, lit_rec, _ = records(out)
    sent = env_rec["json"]["headers"]
    assert sent["Authorization"] == "[redacted]" and sent["X-Auth-Token"] == "[redacted]"
    assert sent["X-Plain"] == "[redacted]"
    assert lit_rec["json"]["headers"]["X-API-Key"] == "[redacted]"


def test_env_vars_in_the_url_and_params_are_sent_filled_and_written_redacted(
    mock_server: MockServer, files: tuple[Path, Path], tmp_path: Path
) -> None:
    req, out = files
    url = mock_server.url
    token, other = unique("url-token"), unique("param-token")
    write_lines(req, [
        {"id": "obj", "url": f"{url}/echo?id=${{URL_TOKEN}}&plain=1",
         "params": {"p": "${PARAM_TOKEN}", "q": "visible"}},
        f"{url}/echo?id=${{URL_TOKEN}}-plain",
    ])
    summary = tmp_path / "s.json"
    env = {"URL_TOKEN": token, "PARAM_TOKEN": other}
    result = run([str(req), "-o", str(out), "--summary-json", str(summary)], env=env)
    assert result.exit_code == 0, result.output
    # the server got the values (it counts requests under their ?id=)
    by_id = mock_server.stats()["by_id"]
    assert by_id.get(token) == 1 and by_id.get(f"{token}-plain") == 1
    obj, plain = records(out)
    assert obj["json"]["query"] == {"id": "[redacted]", "plain": "1", "p": "[redacted]",
                                    "q": "visible"}
    assert plain["json"]["query"] == {"id": "[redacted]-plain"}
    everything = out.read_text() + summary.read_text() + result.output
    assert token not in everything and other not in everything


def test_env_values_in_the_url_are_redacted_from_error_messages(
    files: tuple[Path, Path]
) -> None:
    req, out = files
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    write_lines(req, ["http://127.0.0.1:${CLOSED_PORT}/x"])
    result = run([str(req), "-o", str(out)], env={"CLOSED_PORT": port})
    assert result.exit_code == 1
    (rec,) = records(out)
    assert "127.0.0.1:[redacted]" in rec["error"]["message"]
    assert port not in out.read_text() + result.output
    # and from input errors, where the value makes the URL invalid
    result = run([str(req), "-o", str(out)], env={"CLOSED_PORT": "12x34"})
    assert result.exit_code == 2 and "not a valid URL" in result.stderr
    assert "12x34" not in result.stderr


def test_relative_urls_go_to_the_base_url(mock_server: MockServer,
                                          files: tuple[Path, Path]) -> None:
    req, out = files
    write_lines(req, ["/todos/4", {"id": "e", "url": "/echo?x=1"}])
    result = run([str(req), "-o", str(out), "--base-url", mock_server.url])
    assert result.exit_code == 0, result.output
    todo, echo = records(out)
    assert todo["json"]["id"] == 4 and echo["json"]["path"] == "/echo"
    result = run([str(req), "-o", str(out)])
    assert result.exit_code == 2
    assert f"{req}:1: is a path, not a URL: give --base-url to send it" in result.stderr


class Redirector:
    """A tiny loopback server answering every request with a redirect to ``target``
    (or, with ``ssl_context``, an https server answering ``{"tls": true}``)."""

    def __init__(self, code: int = 302, ssl_context: ssl.SSLContext | None = None) -> None:
        self.code = code
        self.ssl_context = ssl_context
        self.target = ""
        self.seen: list[dict[str, str]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        if self.ssl_context is not None:
            return web.json_response({"tls": True})
        hop = int(request.query.get("hop", "0"))
        if request.query.get("loop"):
            return web.Response(status=self.code, headers={"Location": f"?loop=1&hop={hop + 1}"})
        return web.Response(status=self.code, headers={"Location": self.target})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        scheme = "https" if self.ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"

    def __enter__(self) -> Redirector:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    with Redirector() as server:
        yield server


def test_redirect_to_another_host_drops_every_sensitive_header(
    mock_server: MockServer, redirector: Redirector, files: tuple[Path, Path]
) -> None:
    req, out = files
    redirector.target = f"{mock_server.url}/echo"  # same host name, another port
    write_lines(req, [{"id": "r", "method": "POST", "url": f"{redirector.url}/start",
                       "headers": {"Authorization": "Bearer ${API_KEY}",
                                   "X-API-Key": "literal-key-42", "X-Custom": "${TEAM_NAME}",
                                   "X-Keep": "visible"},
                       "json": {"a": 1}}])
    env = {"API_KEY": SECRET, "TEAM_NAME": "team-secret-77"}
    assert run([str(req), "-o", str(out), "-H", "Proxy-Authorization: Basic abcdefgh"],
               env=env).exit_code == 0
    (rec,) = records(out)
    sent = rec["json"]["headers"]
    for name in ("Authorization", "X-API-Key", "X-Custom", "Proxy-Authorization"):
        assert name not in sent
    assert sent["X-Keep"] == "visible"
    assert rec["json"]["method"] == "GET"  # 302 after POST becomes a GET, body dropped
    # the first hop did get them
    assert redirector.seen[0]["Authorization"] == f"Bearer {SECRET}"


def test_redirect_on_the_same_origin_keeps_headers_and_307_keeps_the_method(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    with Redirector(code=307) as same:
        same.target = f"{same.url}/again"
        # a redirect to itself forever: too many redirects, recorded as such
        write_lines(req, [{"id": "loop", "url": f"{same.url}/x?loop=1",
                           "headers": {"Authorization": "Bearer ${API_KEY}"}}])
        assert run([str(req), "-o", str(out)], env={"API_KEY": SECRET}).exit_code == 1
        (rec,) = records(out)
        assert rec["error"]["type"] == "TooManyRedirects" and rec["status"] == 307
        assert len(same.seen) == 11
        assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in same.seen)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_is_verified_by_default_and_insecure_turns_it_off(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    req, out = files
    with Redirector(ssl_context=context) as server:
        write_lines(req, [f"{server.url}/x"])
        assert run([str(req), "-o", str(out), "--retries", "3"]).exit_code == 1
        (rec,) = records(out)
        assert "Certificate" in rec["error"]["type"] and rec["attempts"] == 1
        assert run([str(req), "-o", str(out), "--insecure"]).exit_code == 0
        assert records(out)[0]["json"] == {"tls": True}


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "url": "http://127.0.0.1:9/a"', "req.jsonl:2: invalid JSON"),
        ('{"id": "x"}', 'req.jsonl:2: "url" is missing'),
        ('{"url": "http://127.0.0.1:9/", "method": "FETCH"}', "req.jsonl:2: unknown method"),
        ('{"url": "ftp://127.0.0.1/file"}', "req.jsonl:2: \"url\" must be an http:// or https://"),
        ('{"id": 1, "url": "http://127.0.0.1:9/"}', "req.jsonl:2: duplicate id 1"),
        ('{"url": "http://127.0.0.1:9/", "headers": {"K": "${NOT_SET_VAR}"}}',
         "req.jsonl:2: header \"K\" uses ${NOT_SET_VAR}"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_is_sent(
    make_mock_server: MakeServer, files: tuple[Path, Path], line: str, message: str
) -> None:
    server = make_mock_server()
    req, out = files
    req.write_text(f"{server.url}/todos/1\n{line}\n{server.url}/todos/3\n")
    result = run([str(req), "-o", str(out)], env={"NOT_SET_VAR": None})  # type: ignore[dict-item]
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert message.replace("req.jsonl", str(req)) in result.stderr
    assert server.stats()["total"] == 0
    assert not out.exists()


def test_skip_invalid_records_bad_lines_as_failed_and_sends_the_rest(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    req.write_text(f"{mock_server.url}/todos/1\nnot json at all\n"
                   f'{{"id": "m", "url": "{mock_server.url}/x", "method": "NOPE"}}\n'
                   f"{mock_server.url}/todos/4\n")
    assert run([str(req), "-o", str(out), "--skip-invalid"]).exit_code == 1
    recs = records(out)
    assert [(r["id"], r["ok"]) for r in recs] == [(1, True), (2, False), ("m", False), (4, True)]
    assert recs[1]["error"]["type"] == "InvalidInput" and recs[1]["attempts"] == 0
    assert f"{req}:3: unknown method" in recs[2]["error"]["message"]


def test_missing_input_and_missing_output_directory_are_exit_2(
    tmp_path: Path, mock_server: MockServer
) -> None:
    result = run([str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "no such input file" in result.stderr
    req = write_lines(tmp_path / "req.jsonl", [f"{mock_server.url}/todos/1"])
    result = run([str(req), "-o", str(tmp_path / "no" / "dir" / "o.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retry-failed"], "--retry-failed needs --resume"),
        (["--rate", "fast"], "--rate"),
        (["--retry-on", "abc"], "--retry-on"),
        (["--max-body", "lots"], "--max-body"),
        (["-H", "nocolon"], "Name: value"),
        (["-c", "0"], "concurrency"),
    ],
)
def test_bad_options_are_usage_errors(
    tmp_path: Path, mock_server: MockServer, args: list[str], message: str
) -> None:
    req = write_lines(tmp_path / "req.jsonl", [f"{mock_server.url}/todos/1"])
    result = run([str(req), "-o", str(tmp_path / "o.jsonl"), *args])
    assert result.exit_code == 2
    assert message in result.stderr


# --------------------------------------------------------------------------- resume
def test_resume_skips_done_ids_and_retry_failed_redoes_failures_once(
    mock_server: MockServer, files: tuple[Path, Path]
) -> None:
    req, out = files
    key = unique("rf")
    write_lines(req, [{"id": "a", "url": f"{mock_server.url}/todos/1"},
                      {"id": "b", "url": f"{mock_server.url}/flaky/{key}?fail=1&code=500"},
                      {"id": "c", "url": f"{mock_server.url}/todos/3"}])
    out.write_text(json.dumps({"id": "a", "index": 0, "ok": True}) + "\n" + '{"id": "c", "in')
    result = run([str(req), "-o", str(out), "--resume"])
    assert result.exit_code == 1
    assert [(r["id"], r["ok"]) for r in records(out)] == [("a", True), ("b", False),
                                                          ("c", True)]
    assert "1 already in the output" in result.stderr
    # nothing left to do, but the failure is still there: exit 1
    assert run([str(req), "-o", str(out), "--resume"]).exit_code == 1
    assert run([str(req), "-o", str(out), "--resume", "--retry-failed"]).exit_code == 0
    recs = records(out)
    assert sorted(r["id"] for r in recs) == ["a", "b", "c"]
    assert all(r["ok"] for r in recs)


# --------------------------------------------------------------------------- example
def test_the_readme_example_file_runs_against_the_mock_server(
    mock_server: MockServer, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "examples" / "requests.jsonl"
    req = tmp_path / "requests.jsonl"
    req.write_text(example.read_text().replace("http://127.0.0.1:8765", mock_server.url)
                   .replace("readme-example", unique("readme")))
    out = tmp_path / "results.jsonl"
    result = run([str(req), "-o", str(out), "-c", "20", "--rate", "6000/min", "--retries", "5"],
                 env={"API_KEY": SECRET})
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert len(recs) == len(example.read_text().splitlines()) and all(r["ok"] for r in recs)
    answers = {r["id"]: r["json"]["choices"][0]["message"]["content"]
               for r in recs if str(r["id"]).startswith("chat-")}
    assert answers["chat-1"] == "6" and answers["chat-2"] == "144"
    assert SECRET not in out.read_text()
