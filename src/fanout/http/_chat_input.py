"""The prompts of ``fanout chat``: a text file (one prompt a line) or JSONL, each line read
as the request that sends it.

``text``: every line that is not blank is one prompt (its ends stripped); its id is its
line number. ``jsonl``: every line is ``{"id", "prompt"}`` or ``{"id", "messages"}``
(``messages`` as the API takes them: ``{"role", "content"}`` objects); ``id`` (a string
or an integer) defaults to the line number. The format is told from the first line that
is not blank (a JSON object: ``jsonl``), unless given.

A :class:`PromptLines` is the line parser ``fanout.http._spec.validate`` takes, so a
prompt file is checked whole before anything is sent, ids unique, exactly as a request
file is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from fanout.http._chat import ChatRequest, ChatSettings
from fanout.http._spec import Context, SpecError, read_lines

FORMATS = ("text", "jsonl")
FIELDS = ("id", "prompt", "messages")
_FIELD_SET = frozenset(FIELDS)
_decode_json = json.JSONDecoder().raw_decode


def detect_format(handle: IO[bytes]) -> tuple[str, int | None]:
    """``jsonl`` when the first line that is not blank starts with ``{``, else ``text``;
    and that line's number. Reads that far."""
    for lineno, raw in read_lines(handle):
        return ("jsonl" if raw.lstrip(b"\xef\xbb\xbf \t")[:1] == b"{" else "text"), lineno
    return "text", None


def _describe(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def content_text(content: Any) -> str | None:
    """The text of a message ``content``: a string, or the ``text`` of its parts; None
    when it is neither."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, Mapping) for part in content):
        return "".join(part["text"] for part in content if isinstance(part.get("text"), str))
    return None


class PromptLines:
    """Reads a line of a prompt file as a :class:`ChatRequest` (a ``LineParser``)."""

    def __init__(self, settings: ChatSettings, fmt: str, detected_on: int | None = None) -> None:
        self.settings = settings
        self.format = fmt
        #: the line the format was told from (None: given with --format)
        self.detected_on = detected_on

    def __call__(self, raw: bytes, lineno: int, index: int, ctx: Context, *,
                 checked: bool = False) -> ChatRequest:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SpecError("is not valid UTF-8; save the file as UTF-8") from None
        if self.format == "text":
            return self._request(lineno, index, lineno, text,
                                 [{"role": "user", "content": text}], None)
        try:
            value, end = _decode_json(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"invalid JSON ({exc.msg} at column {exc.colno}){self._why()}"
                            ) from None
        if end != len(text):
            raise SpecError(f"invalid JSON (Extra data at column {end + 1}){self._why()}")
        if not isinstance(value, dict):
            raise SpecError('expected a JSON object {"id", "prompt"} or {"id", "messages"} '
                            f"(got {_describe(value)}){self._why()}")
        return self._from_object(value, lineno, index)

    def _why(self) -> str:
        if self.detected_on is None:
            return ""
        return (f" (line {self.detected_on} starts with {{, so the file is read as JSONL; "
                "--format text reads every line as a prompt)")

    def _from_object(self, obj: dict[str, Any], lineno: int, index: int) -> ChatRequest:
        if not _FIELD_SET.issuperset(obj):
            unknown = next(k for k in obj if k not in _FIELD_SET)
            raise SpecError(f'unknown field "{unknown}" (expected: {", ".join(FIELDS)})')
        key = obj.get("id")
        if key is None:
            key = lineno
        elif isinstance(key, bool) or not isinstance(key, (str, int)):
            raise SpecError(f'"id" must be a string or an integer (got {_describe(key)})')
        if "prompt" in obj and "messages" in obj:
            raise SpecError('give either "prompt" or "messages", not both')
        if "prompt" in obj:
            prompt = obj["prompt"]
            if not isinstance(prompt, str) or not prompt.strip():
                shown = "an empty string" if isinstance(prompt, str) else _describe(prompt)
                raise SpecError(f'"prompt" must be a non-empty string (got {shown})')
            return self._request(key, index, lineno, prompt,
                                 [{"role": "user", "content": prompt}], None)
        if "messages" not in obj:
            raise SpecError('"prompt" or "messages" is missing')
        messages, system, prompt = self._messages(obj["messages"])
        return self._request(key, index, lineno, prompt, messages, system)

    def _messages(self, value: Any) -> tuple[list[dict[str, Any]], str | None, str]:
        """The messages to send, the system text lifted out of them (Anthropic), and the
        last user message's text."""
        if not isinstance(value, list) or not value:
            shown = "an empty list" if value == [] else _describe(value)
            raise SpecError(f'"messages" must be a non-empty list of {{"role", "content"}} '
                            f"objects (got {shown})")
        api = self.settings.api
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        prompt: str | None = None
        for i, message in enumerate(value):
            where = f'"messages"[{i}]'
            if not isinstance(message, dict):
                raise SpecError(f"{where} must be an object (got {_describe(message)})")
            role = message.get("role")
            if "content" not in message:
                raise SpecError(f'{where} has no "content"')
            text = content_text(message["content"])
            if text is None:
                raise SpecError(f'{where}.content must be a string or a list of parts '
                                f'(got {_describe(message["content"])})')
            if api.name == "anthropic" and role == "system":
                if messages:
                    raise SpecError(f"{where} is a system message after the conversation "
                                    "began: the Anthropic API takes system text only first")
                system.append(text)
                continue
            if role not in api.roles:
                shown = repr(role) if isinstance(role, str) else _describe(role)
                raise SpecError(f"{where}.role must be one of {', '.join(sorted(api.roles))} "
                                f"for the {api.title} API (got {shown})")
            if role == "user":
                prompt = text
            messages.append(message)
        if prompt is None:
            raise SpecError('"messages" has no message with role "user"')
        return messages, "\n\n".join(system) if system else None, prompt

    def _request(self, key: str | int, index: int, lineno: int, prompt: str,
                 messages: list[dict[str, Any]], system: str | None) -> ChatRequest:
        settings = self.settings
        return ChatRequest(key, index, lineno, "POST", settings.url, settings.headers, None,
                           settings.body(messages, system), True, None, settings.sensitive,
                           settings.secrets, prompt)
