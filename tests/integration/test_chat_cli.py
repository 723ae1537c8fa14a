"""``fanout chat`` against the mock server: text and JSONL prompts, messages, the system
prompt and max tokens, the Anthropic Messages API, the key (never written), rate limits
(--rpm/--tpm, 429s retried), API errors, --resume by id, bad input (one line, exit 2,
nothing sent); and the answers checked against what the official openai SDK gets. Also
``fanout http`` on an OpenAI Batch file against a rate-limited mock."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner, Result

from fanout.cli._chat import chat_command
from fanout.cli._http import http_command
from fanout.http._tokens import text_tokens
from fanout.mock import MockServer

MakeServer = Callable[..., MockServer]
KEY = "sk-chat-test-5f3c9a1e77d2"
ANTHROPIC_KEY = "sk-ant-chat-test-0a9b8c7d"


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no API settings but those a test gives."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                 "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def chat(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(chat_command, args, env=env, input=stdin, catch_exceptions=False)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def keyed(make_mock_server: MakeServer) -> MockServer:
    return make_mock_server(api_key=KEY)


def test_text_prompts_each_get_their_answer_and_the_key_is_never_written(
    keyed: MockServer, tmp_path: Path
) -> None:
    prompts = write(tmp_path / "prompts.txt", ["What is 1+2+3=___ ?", "", "   ",
                                               "What is 12*12?", "Compute 100-58."])
    out, summary = tmp_path / "answers.jsonl", tmp_path / "summary.json"
    result = chat([str(prompts), "-o", str(out), "--model", "gpt-4o-mini", "--base-url",
                   keyed.url, "--summary-json", str(summary), "--progress"],
                  env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert [(r["id"], r["prompt"], r["answer"]) for r in recs] == [
        (1, "What is 1+2+3=___ ?", "6"), (4, "What is 12*12?", "144"),
        (5, "Compute 100-58.", "42")]
    for rec in recs:
        assert list(rec) == ["id", "prompt", "answer", "finish_reason", "usage", "ok", "error",
                             "status", "attempts", "elapsed_ms"]
        assert (rec["ok"], rec["error"], rec["status"], rec["attempts"]) == (True, None, 200, 1)
        assert rec["finish_reason"] == "stop"
        assert rec["usage"]["total_tokens"] == (rec["usage"]["prompt_tokens"]
                                                + rec["usage"]["completion_tokens"])
    document = json.loads(summary.read_text())
    assert (document["prompts"], document["ok"], document["failures"]) == (3, 3, 0)
    assert document["tokens"] == {
        "prompt": sum(r["usage"]["prompt_tokens"] for r in recs),
        "completion": sum(r["usage"]["completion_tokens"] for r in recs),
        "total": sum(r["usage"]["total_tokens"] for r in recs)}
    assert "done: 3 prompts" in result.stderr and "tokens  " in result.stderr
    assert "fanout chat: finished 3/3" in result.stderr and "tokens/min" in result.stderr
    for text in (out.read_text(), summary.read_text(), result.stderr, result.stdout):
        assert KEY not in text


def test_jsonl_prompts_and_messages_with_a_system_prompt_and_max_tokens(
    mock_server: MockServer, tmp_path: Path
) -> None:
    system = "Answer with the number only."
    prompts = write(tmp_path / "prompts.jsonl", [
        {"id": "sum", "prompt": "What is 2+2?"},
        {"id": 7, "messages": [{"role": "system", "content": "Be exact."},
                               {"role": "user", "content": "What is 6*7?"}]},
        {"prompt": "Tell me a story."},  # no arithmetic: a long answer, cut at max tokens
    ])
    out = tmp_path / "answers.jsonl"
    result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url",
                   f"{mock_server.url}/v1", "--system", system, "--max-tokens", "5",
                   "--temperature", "0.2"])
    assert result.exit_code == 0, result.output
    by_id = {r["id"]: r for r in records(out)}
    assert list(by_id) == ["sum", 7, 3]
    assert (by_id["sum"]["answer"], by_id[7]["answer"]) == ("4", "42")
    # the system prompt went with the first, the line's own with the second
    assert by_id["sum"]["usage"]["prompt_tokens"] == text_tokens(system + "What is 2+2?")
    assert by_id[7]["usage"]["prompt_tokens"] == text_tokens("Be exact.What is 6*7?")
    story = by_id[3]
    assert story["finish_reason"] == "length" and story["usage"]["completion_tokens"] == 5
    assert story["prompt"] == "Tell me a story."


def test_anthropic_messages_api(make_mock_server: MakeServer, tmp_path: Path) -> None:
    server = make_mock_server(api_key=ANTHROPIC_KEY)
    prompts = write(tmp_path / "prompts.jsonl", [
        {"id": "a", "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "What is 20+22?"}]},
        {"id": "b", "prompt": "And 3*3?"},
        {"id": "c", "prompt": "Say something long."},
    ])
    out, summary = tmp_path / "answers.jsonl", tmp_path / "summary.json"
    result = chat([str(prompts), "-o", str(out), "--api", "anthropic", "--model",
                   "claude-mock", "--max-tokens", "4", "--summary-json", str(summary)],
                  env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": server.url})
    assert result.exit_code == 0, result.output
    a, b, c = records(out)
    assert (a["answer"], a["finish_reason"]) == ("42", "end_turn")
    assert a["usage"] == {"input_tokens": text_tokens("Be brief.What is 20+22?"),
                          "output_tokens": 1}
    assert b["answer"] == "9"
    assert c["finish_reason"] == "max_tokens" and c["usage"]["output_tokens"] == 4
    tokens = json.loads(summary.read_text())["tokens"]
    assert tokens["prompt"] == sum(r["usage"]["input_tokens"] for r in (a, b, c))
    assert ANTHROPIC_KEY not in out.read_text() + result.output
    # a wrong key: every prompt fails once (a 401 is final), with the API's message
    result = chat([str(prompts), "-o", str(out), "--api", "anthropic", "--model", "m"],
                  env={"ANTHROPIC_API_KEY": "sk-ant-wrong-123456", "ANTHROPIC_BASE_URL":
                       server.url})
    assert result.exit_code == 1
    assert {(r["status"], r["attempts"]) for r in records(out)} == {(401, 1)}
    assert "invalid x-api-key" in records(out)[0]["error"]["message"]


def test_the_key_variable_can_be_named_and_a_missing_key_stops_before_sending(
    keyed: MockServer, tmp_path: Path
) -> None:
    prompts = write(tmp_path / "prompts.txt", ["What is 1+1?"])
    out = tmp_path / "answers.jsonl"
    result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url", keyed.url,
                   "--api-key-env", "MY_TEAM_KEY"], env={"MY_TEAM_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert records(out)[0]["answer"] == "2"
    result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url", keyed.url,
                   "--api-key-env", "NOT_SET_ANYWHERE"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: --api-key-env NOT_SET_ANYWHERE: environment variable "
                             "NOT_SET_ANYWHERE is not set\n")
    # the real API without a key: nothing to send
    result = chat([str(prompts), "-o", str(out), "--model", "m"])
    assert result.exit_code == 2
    assert "OPENAI_API_KEY is not set" in result.stderr
    result = chat([str(prompts), "-o", str(out), "--model", "m", "--api", "anthropic"])
    assert "ANTHROPIC_API_KEY is not set" in result.stderr
    assert keyed.stats()["total"] == 1


def test_an_api_error_is_recorded_with_its_message_and_not_retried(
    mock_server: MockServer, tmp_path: Path
) -> None:
    prompts = write(tmp_path / "prompts.jsonl", [
        {"id": "good", "prompt": "What is 5*5?"},
        {"id": "bad", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    ])
    out, summary = tmp_path / "answers.jsonl", tmp_path / "summary.json"
    result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url", mock_server.url,
                   "--summary-json", str(summary)])
    assert result.exit_code == 1
    good, bad = records(out)
    assert good["ok"] and good["answer"] == "25"
    assert (bad["ok"], bad["status"], bad["attempts"], bad["answer"]) == (False, 400, 1, None)
    assert bad["error"]["type"] == "HTTPStatusError"
    assert bad["error"]["message"].startswith("HTTP 400 Bad Request; messages[0].content")
    assert json.loads(summary.read_text())["by_status"] == {"200": 1, "400": 1}


def test_rpm_and_tpm_pace_the_run_under_the_servers_limits(tmp_path: Path) -> None:
    # 600 requests and 6,000 tokens a minute in buckets 1 s deep: 10 requests and 100
    # tokens a second; each prompt reserves 2-3 + 20 tokens, so tokens bind (~4.5/s)
    with MockServer.spawn(rpm=600, tpm=6000, bucket=1.0) as server:
        prompts = write(tmp_path / "prompts.txt", [f"What is {i}+1?" for i in range(12)])
        out = tmp_path / "answers.jsonl"
        result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url", server.url,
                       "--max-tokens", "20", "-c", "16", "--rpm", "600", "--tpm", "6000"])
        stats = server.stats()
    assert result.exit_code == 0, result.output
    assert [r["answer"] for r in records(out)] == [str(i + 1) for i in range(12)]
    assert stats["rate_limited"] == 0
    assert stats["max_in_1s"] <= 4 + 5  # a second's refill, plus the bucket's 100 tokens


def test_429s_are_retried_until_every_prompt_is_answered_exactly_once(tmp_path: Path) -> None:
    # nothing given: 16 prompts at once into a bucket of 10 requests; the 429s are retried
    with MockServer.spawn(rpm=600, bucket=1.0) as server:
        prompts = write(tmp_path / "prompts.txt", [f"What is {i}*2?" for i in range(16)])
        out, summary = tmp_path / "answers.jsonl", tmp_path / "summary.json"
        result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url", server.url,
                       "-c", "16", "--summary-json", str(summary)])
        stats = server.stats()
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert [r["answer"] for r in recs] == [str(2 * i) for i in range(16)]
    assert stats["rate_limited"] > 0 and stats["by_status"]["200"] == 16
    assert sum(r["attempts"] - 1 for r in recs) == stats["rate_limited"]
    document = json.loads(summary.read_text())
    assert document["retries"] == stats["rate_limited"]
    assert document["flow"]["overload_signals"] == stats["rate_limited"]


def test_resume_skips_answered_ids_and_retry_failed_asks_the_failed_again(
    mock_server: MockServer, tmp_path: Path
) -> None:
    prompts = write(tmp_path / "prompts.jsonl", [{"id": f"r{i}", "prompt": f"What is {i}+{i}?"}
                                                 for i in range(5)])
    out = tmp_path / "answers.jsonl"
    before = {"id": "r1", "prompt": "x", "answer": "kept", "ok": True}
    failed = {"id": "r3", "prompt": "x", "answer": None, "ok": False}
    out.write_text(json.dumps(before) + "\n" + json.dumps(failed) + "\n" + '{"id": "r4", "pr')
    args = [str(prompts), "-o", str(out), "--model", "m", "--base-url", mock_server.url,
            "--resume"]
    result = chat(args)
    assert result.exit_code == 1  # the failed record is kept, and says so
    assert "2 already in the output" in result.stderr and "1 failed records kept" in result.stderr
    assert Counter(r["id"] for r in records(out)) == Counter(f"r{i}" for i in range(5))
    assert records(out)[0]["answer"] == "kept"
    result = chat([*args, "--retry-failed"])
    assert result.exit_code == 0, result.output
    by_id = {r["id"]: r for r in records(out)}
    assert len(records(out)) == 5 and by_id["r3"]["answer"] == "6"


@pytest.mark.parametrize(("lines", "args", "message"), [
    (["What is 1+1?"], ["--temperature", "1.5", "--api", "anthropic"],
     "Error: --temperature must be between 0 and 1 for the Anthropic API (got 1.5)"),
    (["What is 1+1?"], ["--retry-failed"], "Error: --retry-failed needs --resume"),
    (["", "  "], [], "Error: PROMPTS: no prompts in it (every line is blank)"),
    (['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], [],
     "Error: PROMPTS:2: duplicate id 'a' (first on line 1)"),
    (['{"id": "a", "prompt": "x"}', "What is 2+2?"], [],
     "Error: PROMPTS:2: invalid JSON (Expecting value at column 1) (line 1 starts with {, so "
     "the file is read as JSONL; --format text reads every line as a prompt)"),
    (['{"id": "a", "question": "x"}'], [],
     'Error: PROMPTS:1: unknown field "question" (expected: id, prompt, messages)'),
    (['{"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]}'],
     ["--api", "anthropic"], "Error: PROMPTS:1: \"messages\"[1] is a system message after"),
    (["What is 1+1?"], ["--base-url", "127.0.0.1:8000"],
     "Error: --base-url must be an http:// or https:// URL"),
])
def test_bad_input_or_options_are_one_line_exit_2_and_nothing_is_sent(
    make_mock_server: MakeServer, tmp_path: Path, lines: list[str], args: list[str],
    message: str,
) -> None:
    server = make_mock_server()
    prompts = write(tmp_path / "prompts.txt", lines)
    out = tmp_path / "answers.jsonl"
    result = chat([str(prompts), "-o", str(out), "--model", "m", "--base-url", server.url,
                   *args], env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(message.replace("PROMPTS", str(prompts)))
    assert server.stats()["total"] == 0 and not out.exists()


def test_the_answers_are_what_the_official_openai_sdk_gets(
    keyed: MockServer, tmp_path: Path
) -> None:
    questions = ["What is 17*3?", "What is 1000-1?", "What is -5+2*4?"]
    sdk = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY, max_retries=0)
    expected = []
    for question in questions:
        answer = sdk.chat.completions.create(
            model="gpt-4o-mini", max_tokens=30,
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": question}])
        assert answer.usage is not None
        expected.append((answer.choices[0].message.content, answer.choices[0].finish_reason,
                         answer.usage.model_dump(exclude_none=True)))
    sdk.close()
    prompts = write(tmp_path / "prompts.txt", questions)
    out = tmp_path / "answers.jsonl"
    result = chat([str(prompts), "-o", str(out), "--model", "gpt-4o-mini", "--max-tokens",
                   "30", "--system", "Be brief."],
                  env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{keyed.url}/v1"})
    assert result.exit_code == 0, result.output
    assert [(r["answer"], r["finish_reason"], r["usage"]) for r in records(out)] == expected


def test_a_batch_file_against_rate_limits_is_retried_until_every_custom_id_is_answered(
    tmp_path: Path,
) -> None:
    # fanout http --format openai, nothing given, 16 at once into buckets of 10 requests
    with MockServer.spawn(rpm=600, tpm=60000, bucket=1.0) as server:
        batch = write(tmp_path / "batch.jsonl", [
            {"custom_id": f"b{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4o-mini", "max_tokens": 10,
                      "messages": [{"role": "user", "content": f"What is {i}+{i}?"}]}}
            for i in range(20)])
        out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
        result = CliRunner().invoke(http_command, [
            str(batch), "-o", str(out), "--format", "openai", "--base-url", server.url,
            "-c", "16", "--retries", "8", "--summary-json", str(summary)],
            env={"OPENAI_API_KEY": KEY}, catch_exceptions=False)
        stats = server.stats()
    assert result.exit_code == 0, result.output
    lines = records(out)
    assert [line["custom_id"] for line in lines] == [f"b{i}" for i in range(20)]
    assert all(line["response"]["status_code"] == 200 for line in lines)
    assert [line["response"]["body"]["choices"][0]["message"]["content"] for line in lines] == \
        [str(2 * i) for i in range(20)]
    assert stats["rate_limited"] > 0 and stats["by_status"]["200"] == 20
    document = json.loads(summary.read_text())
    assert document["tokens"]["total"] == stats["tokens_used"]
    assert KEY not in out.read_text()


def test_standard_input_and_a_key_in_the_environment_base_url(
    mock_server: MockServer,
) -> None:
    tag = uuid.uuid4().hex[:6]
    result = chat(["-", "--model", "m", "--unordered"],
                  env={"OPENAI_BASE_URL": f"{mock_server.url}/v1/"},
                  stdin=f"What is 40+2? ({tag})\nWhat is 2*3?\n")
    assert result.exit_code == 0, result.output
    answers = sorted(json.loads(line)["answer"] for line in result.stdout.splitlines())
    assert answers == ["42", "6"]
