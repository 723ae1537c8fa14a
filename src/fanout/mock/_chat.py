"""The mock ``/v1/chat/completions``: validate an OpenAI-style request, answer its arithmetic;
and what the other model endpoints share (validation helpers, answers cut to a maximum)."""

from __future__ import annotations

import re
from typing import Any

from fanout.http._tokens import CHARS_PER_TOKEN, max_answer_tokens, prompt_tokens, text_tokens

_EXPRESSION = re.compile(r"[-+]?\s*\d+(?:\s*[-+*]\s*[-+]?\s*\d+)+")
_TOKEN = re.compile(r"\s*(\d+|[-+*])")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

MAX_N = 128
NO_ARITHMETIC = "I can only answer arithmetic questions such as: What is 1+2+3=___ ?"


class RequestError(ValueError):
    """An invalid request; ``param`` names the offending field, OpenAI-style."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def evaluate(expression: str) -> int:
    """The value of an integer expression with ``+``, ``-``, ``*`` and unary signs.

    ``*`` binds tighter than ``+`` and ``-``, as in Python.
    """
    tokens = _TOKEN.findall(expression)
    position = 0

    def factor() -> int:
        nonlocal position
        sign = 1
        while tokens[position] in "+-":
            if tokens[position] == "-":
                sign = -sign
            position += 1
        value = int(tokens[position])
        position += 1
        return sign * value

    def term() -> int:
        nonlocal position
        value = factor()
        while position < len(tokens) and tokens[position] == "*":
            position += 1
            value *= factor()
        return value

    total = term()
    while position < len(tokens):
        operator = tokens[position]
        position += 1
        total = total + term() if operator == "+" else total - term()
    return total


def answer(question: str) -> str:
    """The reply to one user message: the value of its first arithmetic expression."""
    match = _EXPRESSION.search(question)
    if match is None:
        return NO_ARITHMETIC
    return str(evaluate(match.group(0)))


def clip(text: str, most: int | None) -> tuple[str, bool]:
    """``text`` cut to at most ``most`` estimated tokens, and whether it was cut."""
    if most is None or text_tokens(text) <= most:
        return text, False
    return text[: most * CHARS_PER_TOKEN], True


def positive_int(body: dict[str, Any], name: str, *, most: int | None = None) -> int | None:
    """``body[name]`` if present: an integer in ``1..most``, else :class:`RequestError`."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"{name} must be an integer >= 1 (got {value!r})", name)
    if most is not None and value > most:
        raise RequestError(f"{name} must be at most {most} (got {value!r})", name)
    return value


def model_of(body: Any) -> str:
    """The ``model`` of a request body, which must be a JSON object."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter (a non-empty string)", "model")
    if body.get("stream"):
        raise RequestError("stream=true is not supported by the fanout mock server", "stream")
    return model


def content_text(content: Any, where: str) -> str:
    """The text of a message ``content``: a string, or the ``text`` of each part of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and isinstance(part.get("text", ""), str)):
                raise RequestError(
                    f"{where} parts must be objects with a 'text' string", where.replace("[", ".[")
                )
            parts.append(part.get("text", ""))
        return "".join(parts)
    if content is None:
        return ""
    raise RequestError(
        f"{where} must be a string or a list of parts (got {content!r})", where.replace("[", ".[")
    )


def reply(body: Any, *, completion_id: str, created: int) -> dict[str, Any]:
    """The OpenAI-style ``chat.completion`` object answering ``body``: ``n`` choices, each
    cut to ``max_completion_tokens``/``max_tokens``; ``usage`` as :mod:`fanout.http._tokens`
    counts it.

    Raises :class:`RequestError` when the request is not a valid chat request.
    """
    model = model_of(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array of messages", "messages")
    n = positive_int(body, "n", most=MAX_N) or 1
    positive_int(body, "max_tokens")
    positive_int(body, "max_completion_tokens")
    question = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{index}] must be an object", f"messages.[{index}]")
        role = message.get("role")
        if role not in _ROLES:
            raise RequestError(
                f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))} (got {role!r})",
                f"messages.[{index}].role",
            )
        if "content" not in message:
            raise RequestError(
                f"messages[{index}] is missing 'content'", f"messages.[{index}].content"
            )
        text = content_text(message["content"], f"messages[{index}].content")
        if role == "user":
            question = text
    if question is None:
        raise RequestError("'messages' must contain a message with role 'user'", "messages")
    content, cut = clip(answer(question), max_answer_tokens(body))
    prompt = prompt_tokens(body)
    completion = n * text_tokens(content)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "length" if cut else "stop",
            }
            for index in range(n)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
