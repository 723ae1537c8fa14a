"""``fanout chat``'s prompts as requests: text and JSONL lines, the body each API gets
(system prompt, max tokens, temperature), the key's headers, and one-line input errors."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from fanout.http._chat import ANTHROPIC, OPENAI, ChatApi, ChatRequest, ChatSettings
from fanout.http._chat_input import PromptLines, detect_format
from fanout.http._spec import Context, InputError, SpecError, validate
from fanout.http._tokens import estimate_tokens

KEY = "sk-unit-0123456789"


def settings(api: ChatApi = OPENAI, **kw: Any) -> ChatSettings:
    headers = api.key_headers(KEY)
    defaults: dict[str, Any] = {"max_tokens": api.default_max_tokens}
    return ChatSettings(api=api, url=f"http://127.0.0.1:9{api.path}", model="m",
                        headers=headers, sensitive=frozenset(h.lower() for h in headers
                                                             if KEY in headers[h]),
                        secrets=(KEY,), **(defaults | kw))


def parse(line: str, fmt: str = "jsonl", api: ChatApi = OPENAI, **kw: Any) -> ChatRequest:
    return PromptLines(settings(api, **kw), fmt)(line.encode(), 7, 0, Context("p.jsonl"))


def test_a_text_line_is_a_user_message_whose_id_is_the_line_number() -> None:
    request = parse("  What is 2+2?  \n", "text")
    assert (request.id, request.line, request.prompt) == (7, 7, "What is 2+2?")
    assert request.method == "POST" and request.url.endswith("/v1/chat/completions")
    assert request.json == {"model": "m", "messages": [{"role": "user",
                                                        "content": "What is 2+2?"}]}
    assert request.headers == {"Authorization": f"Bearer {KEY}"}
    assert request.secrets == (KEY,) and request.sensitive == {"authorization"}


def test_openai_gets_the_system_prompt_first_unless_the_line_has_its_own() -> None:
    plain = parse('{"id": "a", "prompt": "Hi"}', system="Be brief.", max_tokens=20,
                  temperature=0.5)
    assert plain.json == {"model": "m", "max_tokens": 20, "temperature": 0.5, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    own = [{"role": "developer", "content": "Mine."}, {"role": "user", "content": "Hi"}]
    kept = parse(json.dumps({"id": "b", "messages": own}), system="Be brief.")
    assert kept.json["messages"] == own and kept.prompt == "Hi"


def test_anthropic_needs_max_tokens_and_takes_system_text_apart() -> None:
    line = json.dumps({"messages": [
        {"role": "system", "content": "Rule one."}, {"role": "system", "content": "Two."},
        {"role": "user", "content": [{"type": "text", "text": "What is "},
                                     {"type": "text", "text": "1+1?"}]},
        {"role": "assistant", "content": "2"}, {"role": "user", "content": "And 2+2?"}]})
    request = parse(line, api=ANTHROPIC, system="ignored: the line has its own")
    body = request.json
    assert body["max_tokens"] == 1024 and body["system"] == "Rule one.\n\nTwo."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert request.id == 7 and request.prompt == "And 2+2?"
    assert request.headers == {"anthropic-version": "2023-06-01", "x-api-key": KEY}
    assert parse('{"prompt": "Hi"}', api=ANTHROPIC, system="S").json["system"] == "S"


def test_the_estimated_tokens_of_a_prompt_are_what_the_limiter_reserves() -> None:
    request = parse('{"prompt": "12345678"}', system="1234", max_tokens=100)
    assert estimate_tokens(request.json) == 3 + 100


@pytest.mark.parametrize(("line", "api", "message"), [
    ("{not json", OPENAI, "invalid JSON (Expecting property name enclosed in double quotes"),
    ('"a string"', OPENAI, 'expected a JSON object {"id", "prompt"} or {"id", "messages"} '
                           "(got a string)"),
    ('{"id": "a", "promt": "Hi"}', OPENAI, 'unknown field "promt" (expected: id, prompt, '
                                           "messages)"),
    ('{"id": true, "prompt": "Hi"}', OPENAI, '"id" must be a string or an integer'),
    ('{"prompt": "Hi", "messages": []}', OPENAI, 'give either "prompt" or "messages"'),
    ('{"id": "a"}', OPENAI, '"prompt" or "messages" is missing'),
    ('{"prompt": "  "}', OPENAI, '"prompt" must be a non-empty string (got an empty string)'),
    ('{"messages": []}', OPENAI, '"messages" must be a non-empty list'),
    ('{"messages": [{"role": "user"}]}', OPENAI, '"messages"[0] has no "content"'),
    ('{"messages": [{"role": "bot", "content": "x"}]}', OPENAI,
     '"messages"[0].role must be one of assistant, developer, system, tool, user for the '
     "OpenAI API (got 'bot')"),
    ('{"messages": [{"role": "user", "content": 3}]}', OPENAI,
     '"messages"[0].content must be a string or a list of parts (got a number)'),
    ('{"messages": [{"role": "assistant", "content": "x"}]}', OPENAI,
     '"messages" has no message with role "user"'),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]}',
     ANTHROPIC, '"messages"[1] is a system message after the conversation began'),
    ('{"messages": [{"role": "developer", "content": "x"}]}', ANTHROPIC,
     "must be one of assistant, user for the Anthropic API (got 'developer')"),
])
def test_a_bad_line_says_what_is_wrong(line: str, api: ChatApi, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(line, api=api)
    assert message in str(info.value)


def test_a_bad_line_in_a_file_told_jsonl_by_its_first_line_says_how_to_read_it_as_text() -> None:
    text = '{"prompt": "one"}\nWhat is 1+1?\n'
    handle = io.BytesIO(text.encode())
    fmt, line = detect_format(handle)
    assert (fmt, line) == ("jsonl", 1)
    handle.seek(0)
    with pytest.raises(InputError) as info:
        validate(handle, Context("p.txt"), skip_invalid=False,
                 parse=PromptLines(settings(), fmt, line))
    assert str(info.value).startswith("p.txt:2: invalid JSON (Expecting value at column 1) "
                                      "(line 1 starts with {, so the file is read as JSONL; "
                                      "--format text reads every line as a prompt)")


def test_validation_numbers_text_prompts_by_line_and_refuses_a_duplicate_id() -> None:
    lines = PromptLines(settings(), "text")
    checked = validate(io.BytesIO(b"one\n\n  \ntwo\n"), Context("p.txt"), skip_invalid=False,
                       parse=lines)
    assert checked.count == 2 and checked.cached is not None
    assert [(r.id, r.prompt) for r in checked.cached] == [(1, "one"), (4, "two")]
    duplicate = (b'{"id": "a", "prompt": "x"}\n{"id": 1, "prompt": "y"}\n'
                 b'{"id": "a", "prompt": "z"}\n')
    with pytest.raises(InputError) as info:
        validate(io.BytesIO(duplicate), Context("p.jsonl"), skip_invalid=False,
                 parse=PromptLines(settings(), "jsonl"))
    assert str(info.value) == "p.jsonl:3: duplicate id 'a' (first on line 1)"
    with pytest.raises(InputError) as info:
        validate(io.BytesIO(b"caf\xe9\n"), Context("p.txt"), skip_invalid=False, parse=lines)
    assert str(info.value) == "p.txt:1: is not valid UTF-8; save the file as UTF-8"


def test_the_format_is_told_from_the_first_line_that_is_not_blank() -> None:
    assert detect_format(io.BytesIO(b"\n\nWhat is {x}?\n{}\n")) == ("text", 3)
    assert detect_format(io.BytesIO(b'\xef\xbb\xbf  {"prompt": "x"}\n')) == ("jsonl", 1)
    assert detect_format(io.BytesIO(b"")) == ("text", None)


def test_without_a_key_no_key_header_is_sent() -> None:
    assert OPENAI.key_headers(None) == {}
    assert ANTHROPIC.key_headers(None) == {"anthropic-version": "2023-06-01"}
