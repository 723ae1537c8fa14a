"""``fanout http`` on OpenAI Batch files: a batch input file as it is, Batch output lines,
OPENAI_API_KEY / OPENAI_BASE_URL, and --resume by custom_id, across kill -9 too."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from http_servers import RequestIdServer

from fanout.cli._http import http_command
from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]
KEY = "sk-openai-live-9876543210abcdef"
QUESTIONS = {"q-add": ("What is 1+2+3=___ ?", "6"), "q-mul": ("And 12*12?", "144"),
             "q-sub": ("Compute 100-58.", "42"), "q-neg": ("What is -4+1?", "-3")}


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no OpenAI settings but those a test gives."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def chat_line(custom_id: str, question: str, url: str = "/v1/chat/completions") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url,
                       "body": {"model": "gpt-4o-mini", "max_tokens": 50,
                                "messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": question}]}})


def write_batch(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def run(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(http_command, args, env=env, input=stdin, catch_exceptions=False)


def output_lines(text: str) -> list[dict[str, Any]]:
    """Each line of a Batch output, checked against the documented shape."""
    lines = []
    for line in text.splitlines():
        rec = json.loads(line)
        assert list(rec) == ["id", "custom_id", "response", "error"]
        assert rec["id"].startswith("batch_req_") and isinstance(rec["custom_id"], str)
        if rec["response"] is None:
            assert set(rec["error"]) == {"code", "message"}
        else:
            assert rec["error"] is None
            assert list(rec["response"]) == ["status_code", "request_id", "body"]
        lines.append(rec)
    return lines


@pytest.mark.parametrize("base", ["", "/v1", "/v1/"])
def test_a_batch_file_runs_against_a_compatible_server_with_batch_output(
    mock_server: MockServer, tmp_path: Path, base: str
) -> None:
    req = write_batch(tmp_path / "batch.jsonl",
                      [chat_line(cid, question) for cid, (question, _) in QUESTIONS.items()])
    out = tmp_path / "out.jsonl"
    result = run([str(req), "-o", str(out), "--base-url", mock_server.url + base],
                 env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    recs = output_lines(out.read_text())
    assert [r["custom_id"] for r in recs] == list(QUESTIONS)
    for rec, (_, expected) in zip(recs, QUESTIONS.values(), strict=True):
        response = rec["response"]
        assert response["status_code"] == 200
        assert response["body"]["object"] == "chat.completion"
        assert response["body"]["choices"][0]["message"]["content"] == expected
    assert len({r["id"] for r in recs}) == len(recs)
    assert KEY not in out.read_text() + result.output


def test_openai_base_url_and_standard_input(mock_server: MockServer) -> None:
    result = run(["-"], env={"OPENAI_BASE_URL": f"{mock_server.url}/v1"},
                 stdin=chat_line("only", "What is 2*21?") + "\n")
    assert result.exit_code == 0, result.output
    (rec,) = output_lines(result.stdout)
    assert rec["response"]["body"]["choices"][0]["message"]["content"] == "42"


def test_failed_statuses_keep_their_response_and_no_answer_is_an_error(
    mock_server: MockServer, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    bad_body = json.dumps({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                           "body": {"model": "m"}})
    req = write_batch(tmp_path / "batch.jsonl", [
        chat_line("good", "What is 1+1?"), bad_body,
        chat_line("down", "What is 2+2?", f"http://127.0.0.1:{closed}/v1/chat/completions"),
    ])
    out = tmp_path / "out.jsonl"
    summary = tmp_path / "summary.json"
    result = run([str(req), "-o", str(out), "--base-url", mock_server.url,
                  "--summary-json", str(summary)])
    assert result.exit_code == 1
    good, bad, down = output_lines(out.read_text())
    assert good["response"]["status_code"] == 200
    assert bad["response"]["status_code"] == 400 and bad["error"] is None
    assert bad["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert down["response"] is None
    assert down["error"]["code"] == "ClientConnectorError"
    assert f"127.0.0.1:{closed}" in down["error"]["message"]
    doc = json.loads(summary.read_text())
    assert (doc["ok"], doc["failures"], doc["by_status"]) == (1, 2, {"200": 1, "400": 1})


def test_request_id_comes_from_the_server_and_the_key_is_sent_as_a_bearer_token(
    tmp_path: Path
) -> None:
    req = write_batch(tmp_path / "batch.jsonl",
                      [chat_line("a", "1+1?"), chat_line("b", "2+2?", "/v1/embeddings")])
    out = tmp_path / "out.jsonl"
    with RequestIdServer() as server:
        result = run([str(req), "-o", str(out), "--base-url", server.url + "/v1"],
                     env={"OPENAI_API_KEY": KEY})
        assert result.exit_code == 0, result.output
        assert [h["Authorization"] for h in server.seen] == [f"Bearer {KEY}"] * 2
        recs = output_lines(out.read_text())
        assert sorted(r["response"]["request_id"] for r in recs) == ["req_1", "req_2"]
        assert {r["response"]["body"]["path"] for r in recs} == {"/v1/chat/completions",
                                                                  "/v1/embeddings"}
        # -H Authorization wins; without OPENAI_API_KEY nothing is added
        assert run([str(req), "-o", str(out), "--base-url", server.url,
                    "-H", "Authorization: Bearer ${OTHER_KEY}"],
                   env={"OPENAI_API_KEY": KEY, "OTHER_KEY": "sk-other-1234567"}).exit_code == 0
        assert [h["Authorization"] for h in server.seen[2:]] == ["Bearer sk-other-1234567"] * 2
        assert run([str(req), "-o", str(out), "--base-url", server.url]).exit_code == 0
        assert all("Authorization" not in h for h in server.seen[4:])
    assert KEY not in out.read_text()


def test_resume_goes_by_custom_id_and_retry_failed_redoes_failed_statuses(
    mock_server: MockServer, tmp_path: Path
) -> None:
    key = f"batch-{uuid.uuid4().hex[:8]}"
    req = write_batch(tmp_path / "batch.jsonl", [
        chat_line("c1", "1+1?"),
        json.dumps({"custom_id": "c2", "method": "POST", "url": f"/flaky/{key}?fail=1&code=500",
                    "body": {}}),
        chat_line("c3", "3+3?"),
    ])
    out = tmp_path / "out.jsonl"
    first = output_lines(chat_record_from(mock_server, "c1"))
    out.write_text(json.dumps(first[0]) + "\n" + '{"id": "batch_req_x", "custom_id": "c3", "r')
    result = run([str(req), "-o", str(out), "--resume", "--base-url", mock_server.url])
    assert result.exit_code == 1
    assert "1 already in the output" in result.stderr
    recs = output_lines(out.read_text())
    assert [(r["custom_id"], r["response"]["status_code"]) for r in recs] == [
        ("c1", 200), ("c2", 500), ("c3", 200)]
    # nothing left to send, but a failure is kept: exit 1, and it says how to redo it
    result = run([str(req), "-o", str(out), "--resume", "--base-url", mock_server.url])
    assert result.exit_code == 1 and "1 failed records kept" in result.stderr
    result = run([str(req), "-o", str(out), "--resume", "--retry-failed",
                  "--base-url", mock_server.url])
    assert result.exit_code == 0, result.output
    recs = output_lines(out.read_text())
    assert sorted(r["custom_id"] for r in recs) == ["c1", "c2", "c3"]
    assert all(r["response"]["status_code"] == 200 for r in recs)


def test_resuming_a_batch_output_with_a_fanout_input_is_refused(
    mock_server: MockServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(chat_record_from(mock_server, "c1"))
    req = tmp_path / "req.jsonl"
    req.write_text(f"{mock_server.url}/todos/1\n")
    result = run([str(req), "-o", str(out), "--resume"])
    assert result.exit_code == 2
    assert f"{out}: holds OpenAI Batch output lines" in result.stderr
    assert len(out.read_text().splitlines()) == 1


def chat_record_from(server: MockServer, custom_id: str) -> str:
    """The Batch output line of one real request (to seed an output file)."""
    result = run(["-", "--base-url", server.url], stdin=chat_line(custom_id, "1+1?") + "\n")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        ([chat_line("a", "1?"), chat_line("b", "2?"), chat_line("a", "3?")], [],
         "batch.jsonl:3: duplicate custom_id 'a' (first on line 1)"),
        ([chat_line("a", "1?"), '{"id": "x", "url": "http://127.0.0.1:9/"}'], [],
         'batch.jsonl:2: unknown field "id" in an OpenAI Batch line (expected: custom_id, '
         "method, url, body); line 1 is an OpenAI Batch line; use one format per file"),
        ([chat_line("a", "1?"), '{"url": "http://127.0.0.1:9/"}'], [],
         'batch.jsonl:2: "custom_id" is missing'),
        ([chat_line("a", "1?"), "http://127.0.0.1:9/x"], [],
         "batch.jsonl:2: expected an OpenAI Batch line"),
        (['{"id": "x", "url": "http://127.0.0.1:9/"}', chat_line("a", "1?")], [],
         'batch.jsonl:2: "custom_id" is a field of the OpenAI Batch format, but line 1 is '
         "in fanout's format; use one format per file"),
        ([chat_line("a", "1?")], ["--format", "fanout"],
         'batch.jsonl:1: "custom_id" is a field of the OpenAI Batch format, but --format '
         "fanout was given"),
        (['{"id": "x", "url": "http://127.0.0.1:9/"}'], ["--format", "openai"],
         'batch.jsonl:1: unknown field "id" in an OpenAI Batch line (expected: custom_id, '
         "method, url, body); --format openai was given"),
        ([chat_line("a", "1?")], ["--include-headers"],
         "--include-headers: the OpenAI Batch output of"),
        ([chat_line("a", "1?")], ["--base-url", "127.0.0.1:8000"],
         "--base-url must be an http:// or https:// URL"),
    ],
)
def test_bad_batch_input_is_one_line_exit_2_and_nothing_is_sent(
    make_mock_server: MakeServer, tmp_path: Path, lines: list[str], args: list[str],
    message: str
) -> None:
    server = make_mock_server()
    req = write_batch(tmp_path / "batch.jsonl", lines)
    out = tmp_path / "out.jsonl"
    result = run([str(req), "-o", str(out), "--base-url", server.url, *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert message.replace("batch.jsonl", str(req)) in result.stderr
    assert server.stats()["total"] == 0 and not out.exists()


# ------------------------------------------------------------------ kill -9 + resume
def spawn(req: Path, out: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "fanout", "http", str(req), "-o", str(out),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_then_resume_leaves_every_custom_id_exactly_once(
    make_mock_server: MakeServer, tmp_path: Path
) -> None:
    server = make_mock_server(latency=0.01)
    req, out = tmp_path / "batch.jsonl", tmp_path / "out.jsonl"
    # ?id= lets the mock server count the requests of each custom_id
    ids = [f"k{i}" for i in range(300)]
    write_batch(req, [chat_line(cid, f"What is {i}+1?", f"/v1/chat/completions?id={cid}")
                      for i, cid in enumerate(ids)])
    rng = random.Random(99)
    args = ["--resume", "-c", "20", "--base-url", server.url + "/v1"]
    for threshold in (rng.randint(1, 50), rng.randint(100, 180), rng.randint(200, 280)):
        proc = spawn(req, out, *args)
        deadline = time.monotonic() + 30
        while count_lines(out) < threshold and proc.poll() is None:
            assert time.monotonic() < deadline, f"no {threshold} lines after 30 s"
            time.sleep(0.002)
        proc.kill()
        proc.communicate(timeout=30)
    proc = spawn(req, out, *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    recs = output_lines(out.read_text())
    assert Counter(r["custom_id"] for r in recs) == Counter(ids)
    for i, rec in enumerate(sorted(recs, key=lambda r: int(r["custom_id"][1:]))):
        assert rec["response"]["body"]["choices"][0]["message"]["content"] == str(i + 1)
    by_id = server.stats()["by_id"]
    # every request was sent (one answered but not yet written at a kill is sent again:
    # delivery is at least once, the output exactly once)
    assert all(by_id.get(cid, 0) >= 1 for cid in ids)
    assert out.read_bytes().endswith(b"\n")


def test_the_readme_batch_example_runs_against_the_mock_server(
    mock_server: MockServer, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "examples" / "openai_batch.jsonl"
    out = tmp_path / "results.jsonl"
    result = run([str(example), "-o", str(out)],
                 env={"OPENAI_BASE_URL": f"{mock_server.url}/v1", "OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    recs = output_lines(out.read_text())
    answers = {r["custom_id"]: r["response"]["body"]["choices"][0]["message"]["content"]
               for r in recs}
    assert answers == {"request-1": "6", "request-2": "144", "request-3": "42",
                       "request-4": "40", "request-5": "22"}
