"""The mock ``/v1/chat/completions``: validate an OpenAI-style request, answer its arithmetic."""

from __future__ import annotations

import re
from typing import Any

_EXPRESSION = re.compile(r"[-+]?\s*\d+(?:\s*[-+*]\s*[-+]?\s*\d+)+")
_TOKEN = re.compile(r"\s*(\d+|[-+*])")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

NO_ARITHMETIC = "I can only answer arithmetic questions such as: What is 1+2+3=___ ?"


class ChatRequestError(ValueError):
    """An invalid chat request; ``param`` names the offending field, OpenAI-style."""

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


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and isinstance(part.get("text", ""), str)):
                raise ChatRequestError(
                    f"messages[{index}].content parts must be objects with a 'text' string",
                    f"messages.[{index}].content",
                )
            parts.append(part.get("text", ""))
        return "".join(parts)
    if content is None:
        return ""
    raise ChatRequestError(
        f"messages[{index}].content must be a string or a list of parts (got {content!r})",
        f"messages.[{index}].content",
    )


def reply(body: Any, *, completion_id: str, created: int) -> dict[str, Any]:
    """The OpenAI-style ``chat.completion`` object answering ``body``.

    Raises :class:`ChatRequestError` when the request is not a valid chat request.
    """
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ChatRequestError("you must provide a model parameter (a non-empty string)", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("'messages' must be a non-empty array of messages", "messages")
    if body.get("stream"):
        raise ChatRequestError("stream=true is not supported by the fanout mock server", "stream")
    question = None
    prompt_tokens = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ChatRequestError(f"messages[{index}] must be an object", f"messages.[{index}]")
        role = message.get("role")
        if role not in _ROLES:
            raise ChatRequestError(
                f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))} (got {role!r})",
                f"messages.[{index}].role",
            )
        if "content" not in message:
            raise ChatRequestError(
                f"messages[{index}] is missing 'content'", f"messages.[{index}].content"
            )
        text = _text(message["content"], index)
        prompt_tokens += len(text.split())
        if role == "user":
            question = text
    if question is None:
        raise ChatRequestError("'messages' must contain a message with role 'user'", "messages")
    content = answer(question)
    completion_tokens = len(content.split())
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
